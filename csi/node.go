package csi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultFsType is the file system made on a blank volume when the
// request names none.
const DefaultFsType = "ext4"

func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	resp := &csi.NodeGetInfoResponse{NodeId: d.node.HostNQN}
	if len(d.node.Topology) > 0 {
		resp.AccessibleTopology = &csi.Topology{Segments: d.node.Topology}
	}
	return resp, nil
}

func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, c := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetVolumeStats reports a published volume's use: a file system's
// bytes and inodes (statfs), a block volume's size.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	p := req.GetVolumePath()
	if req.GetVolumeId() != "" && p == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_path: missing")
	}
	if _, err := nodeVolume(req.GetVolumeId()); err != nil {
		return nil, err
	}
	if on, err := d.node.OS.Mounted(p); err != nil {
		return nil, osError("volume path", err)
	} else if !on {
		return nil, status.Errorf(codes.NotFound, "volume %s is not published at %s", req.GetVolumeId(), p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, osError("volume path", err)
	}
	if !fi.IsDir() { // a block volume: the device bound onto a file
		f, err := os.Open(p)
		if err != nil {
			return nil, osError("volume path", err)
		}
		defer f.Close()
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, osError("volume path", err)
		}
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: size}}}, nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return nil, osError("statfs", err)
	}
	bs := int64(st.Bsize)
	total, free, avail := int64(st.Blocks)*bs, int64(st.Bfree)*bs, int64(st.Bavail)*bs
	files, ffree := int64(st.Files), int64(st.Ffree)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: total, Available: avail, Used: total - free},
		{Unit: csi.VolumeUsage_INODES, Total: files, Available: ffree, Used: files - ffree},
	}}, nil
}

// nodeVolume reads a node request's volume ID (the callers check the
// other required fields first: a missing one is InvalidArgument whatever
// the ID): the hash, from which the subsystem's NQN follows.
func nodeVolume(id string) (hash string, err error) {
	if id == "" {
		return "", status.Error(codes.InvalidArgument, "volume_id: missing")
	}
	_, h, ok := parseVolumeID(id)
	if !ok {
		return "", status.Errorf(codes.NotFound, "volume %s: not a flashpath volume ID", id)
	}
	return h, nil
}

func osError(what string, err error) error {
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

func (d *Driver) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	staging := req.GetStagingTargetPath()
	if req.GetVolumeId() != "" && staging == "" {
		return nil, status.Error(codes.InvalidArgument, "staging_target_path: missing")
	}
	if req.GetVolumeId() != "" {
		if err := checkCap(req.GetVolumeCapability()); err != nil {
			return nil, err
		}
	}
	h, err := nodeVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	addrs := req.GetPublishContext()["addresses"]
	if addrs == "" {
		addrs = req.GetVolumeContext()["addresses"]
	}
	if addrs == "" {
		return nil, status.Error(codes.InvalidArgument, "publish_context: no addresses (ControllerPublishVolume gives them)")
	}
	defer d.lock(h)()
	nqn := volumeNQN(h)
	dev, err := d.node.OS.Connect(ctx, nqn, strings.Split(addrs, ","), d.node.HostNQN)
	if err != nil {
		return nil, osError("connect "+nqn, err)
	}
	mnt := req.GetVolumeCapability().GetMount()
	if mnt == nil {
		return &csi.NodeStageVolumeResponse{}, nil // block: NodePublishVolume binds the device
	}
	if on, err := d.node.OS.Mounted(staging); err != nil {
		return nil, osError("staging path", err)
	} else if on {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, osError("staging path", err)
	}
	fstype := mnt.GetFsType()
	if fstype == "" {
		fstype = DefaultFsType
	}
	if fstype, err = d.node.OS.Format(ctx, dev, fstype); err != nil {
		return nil, osError("format "+dev, err)
	}
	if err := d.node.OS.Mount(dev, staging, fstype, false, mnt.GetMountFlags()); err != nil {
		return nil, osError("mount "+dev, err)
	}
	d.log.Info("volume staged", "id", req.GetVolumeId(), "device", dev, "fstype", fstype, "path", staging)
	return &csi.NodeStageVolumeResponse{}, nil
}

func (d *Driver) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	staging := req.GetStagingTargetPath()
	if req.GetVolumeId() != "" && staging == "" {
		return nil, status.Error(codes.InvalidArgument, "staging_target_path: missing")
	}
	h, err := nodeVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	defer d.lock(h)()
	if err := d.node.OS.Unmount(staging); err != nil {
		return nil, osError("unmount "+staging, err)
	}
	if err := d.node.OS.Disconnect(volumeNQN(h)); err != nil {
		return nil, osError("disconnect", err)
	}
	d.log.Info("volume unstaged", "id", req.GetVolumeId(), "path", staging)
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	tp, staging := req.GetTargetPath(), req.GetStagingTargetPath()
	if req.GetVolumeId() != "" {
		switch {
		case tp == "":
			return nil, status.Error(codes.InvalidArgument, "target_path: missing")
		case staging == "":
			return nil, status.Error(codes.InvalidArgument, "staging_target_path: missing (the volume is staged first)")
		}
		if err := checkCap(req.GetVolumeCapability()); err != nil {
			return nil, err
		}
	}
	h, err := nodeVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	defer d.lock(h)()
	if on, err := d.node.OS.Mounted(tp); err != nil {
		return nil, osError("target path", err)
	} else if on {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	ro := req.GetReadonly() || req.GetVolumeCapability().GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	if req.GetVolumeCapability().GetBlock() != nil {
		dev, err := d.node.OS.Device(volumeNQN(h))
		if err != nil {
			return nil, osError("device", err)
		}
		if dev == "" {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not connected: stage it first", req.GetVolumeId())
		}
		if err := os.MkdirAll(filepath.Dir(tp), 0o750); err != nil {
			return nil, osError("target path", err)
		}
		f, err := os.OpenFile(tp, os.O_CREATE|os.O_RDONLY, 0o640)
		if err != nil {
			return nil, osError("target path", err)
		}
		f.Close()
		if err := d.node.OS.Mount(dev, tp, "", ro, nil); err != nil {
			return nil, osError("bind "+dev, err)
		}
		d.log.Info("volume published", "id", req.GetVolumeId(), "device", dev, "path", tp)
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if on, err := d.node.OS.Mounted(staging); err != nil {
		return nil, osError("staging path", err)
	} else if !on {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", req.GetVolumeId(), staging)
	}
	if err := os.MkdirAll(tp, 0o750); err != nil {
		return nil, osError("target path", err)
	}
	if err := d.node.OS.Mount(staging, tp, "", ro, req.GetVolumeCapability().GetMount().GetMountFlags()); err != nil {
		return nil, osError("bind "+staging, err)
	}
	d.log.Info("volume published", "id", req.GetVolumeId(), "path", tp, "readonly", ro)
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	tp := req.GetTargetPath()
	if req.GetVolumeId() != "" && tp == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path: missing")
	}
	h, err := nodeVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	defer d.lock(h)()
	if err := d.node.OS.Unmount(tp); err != nil {
		return nil, osError("unmount "+tp, err)
	}
	// Remove, not RemoveAll: a path that still holds files is left.
	if err := os.Remove(tp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, osError("target path", err)
	}
	d.log.Info("volume unpublished", "id", req.GetVolumeId(), "path", tp)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
