"""Runs capi/example.py end to end behind the fake libcuda and the fake
torch beside this file (test/e2e TestPythonExampleOverTCP drives it):

    example_check.py LIB HOSTNQN INDEX SHARDS_JSON SAVE_TO OUT_INDEX

loads the sharded checkpoint INDEX with its shards where SHARDS_JSON
({name: location}) says, verified, as host HOSTNQN; saves the loaded tensors with
save_sharded to the locations SAVE_TO (comma separated) under OUT_INDEX;
loads that back, verified; and prints one JSON document: each load's
tensors as {name: [dtype, shape, sha256 of the bytes]}, each load's report
and the save's.
"""
import hashlib, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, "faketorch"), os.path.dirname(here)]
import example  # noqa: E402 (capi/example.py)
import torch  # noqa: E402 (the fake)

lib_path, hostnqn, index, shards, save_to, out_index = sys.argv[1:7]
lib = example._lib(lib_path)


def digest(ck):
    return {name: [repr(t.dtype), list(t.shape), hashlib.sha256(t.bytes()).hexdigest()] for name, t in ck.items()}


def info(ck):
    return {k: v for k, v in ck.info.items() if k != "tensors"}


ck = example.load(index, shards=json.loads(shards), lib=lib, hostnqn=hostnqn, verify=True)
out = {"load": digest(ck), "load_info": info(ck), "cuda_initialized": torch.cuda.initialized}
out["save"] = example.save_sharded(out_index, dict(ck), save_to.split(","), lib=lib, hostnqn=hostnqn)
out["synchronized"] = torch.cuda.synchronized
back = example.load(out_index, lib=lib, hostnqn=hostnqn, verify=True)
out["reload"], out["reload_info"] = digest(back), info(back)
ck.close()
back.close()
try:
    example.load(out_index + ".missing", lib=lib)
except RuntimeError as e:
    out["missing_error"] = str(e)
print(json.dumps(out))
