package csi

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ParamTargets is the StorageClass parameter that limits where a volume
// may go: target names, comma-separated (default: all).
const ParamTargets = "targets"

const (
	// DefaultVolumeSize is a volume's size when the request names none.
	DefaultVolumeSize = 1 << 30
	// volumeAlign: sizes are rounded up to whole MiB.
	volumeAlign = 1 << 20
	// blockSize is every volume's logical block size: the same after a
	// target restart takes the file again, whatever the request said.
	blockSize = 4096
	model     = "flashpath csi"
)

// --- what a target holds ---

type volumeInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Bdev string `json:"bdev"`
}

type volumeList struct {
	Total   int64        `json:"total_bytes"`
	Free    int64        `json:"free_bytes"`
	Volumes []volumeInfo `json:"volumes"`
}

func (l *volumeList) find(hash string) *volumeInfo {
	for i := range l.Volumes {
		if l.Volumes[i].Name == hash {
			return &l.Volumes[i]
		}
	}
	return nil
}

type subsystemInfo struct {
	NQN   string `json:"nqn"`
	Hosts []struct {
		NQN string `json:"nqn"`
	} `json:"hosts"`
	Namespaces []nsInfo `json:"namespaces"`
}

type nsInfo struct {
	NSID     uint32 `json:"nsid"`
	BdevName string `json:"bdev_name"`
}

func (s *subsystemInfo) hosts() []string {
	var out []string
	for _, h := range s.Hosts {
		out = append(out, h.NQN)
	}
	return out
}

func (t *target) volumes(ctx context.Context) (*volumeList, error) {
	var l volumeList
	if err := t.rpc.call(ctx, "flashpath_get_volumes", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// subsystem returns the subsystem nqn, or nil where the target has none.
func (t *target) subsystem(ctx context.Context, nqn string) (*subsystemInfo, error) {
	var ss []subsystemInfo
	err := t.rpc.call(ctx, "nvmf_get_subsystems", map[string]string{"nqn": nqn}, &ss)
	if isRPC(err, codeInvalidParams) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(ss) != 1 {
		return nil, fmt.Errorf("target %s: nvmf_get_subsystems %s: %d subsystems in the answer", t.Name, nqn, len(ss))
	}
	return &ss[0], nil
}

// export makes volume hash of size bytes a namespace of its subsystem,
// doing only what is missing: the bdev (a target restarted since takes
// the file again), the subsystem, the namespace.
func (t *target) export(ctx context.Context, v *volumeInfo) error {
	if v.Bdev == "" {
		if err := t.rpc.call(ctx, "flashpath_volume_create", map[string]any{"name": v.Name, "size": v.Size, "block_size": blockSize}, nil); err != nil {
			return err
		}
	}
	nqn := volumeNQN(v.Name)
	ss, err := t.subsystem(ctx, nqn)
	if err != nil {
		return err
	}
	if ss == nil {
		p := map[string]any{"nqn": nqn, "serial_number": v.Name[4:24], "model_number": model, "allow_any_host": false}
		if err := t.rpc.call(ctx, "nvmf_create_subsystem", p, nil); err != nil {
			return err
		}
		ss = &subsystemInfo{}
	}
	if !slices.ContainsFunc(ss.Namespaces, func(n nsInfo) bool { return n.BdevName == v.Name }) {
		p := map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": v.Name, "nsid": 1}}
		if err := t.rpc.call(ctx, "nvmf_subsystem_add_ns", p, nil); err != nil {
			return err
		}
	}
	return t.listen(ctx, nqn)
}

type listenerInfo struct {
	Address struct {
		Trtype  string `json:"trtype"`
		Traddr  string `json:"traddr"`
		Trsvcid string `json:"trsvcid"`
	} `json:"address"`
}

// listen makes subsystem nqn listen on each of the target's addresses it
// does not listen on yet. A target with listeners of its own (--listen,
// its configuration file) serves every subsystem on them; one started
// empty or from a saved SPDK configuration has listeners per subsystem.
// A listener on the unspecified address (0.0.0.0, ::) and the address's
// port serves it.
func (t *target) listen(ctx context.Context, nqn string) error {
	var ls []listenerInfo
	if err := t.rpc.call(ctx, "nvmf_subsystem_get_listeners", map[string]string{"nqn": nqn}, &ls); err != nil {
		return err
	}
	var transports map[string]bool // read when first needed
	for _, a := range t.Addresses {
		tr, host, port, err := ParseAddress(a)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(ls, func(l listenerInfo) bool {
			ip := net.ParseIP(l.Address.Traddr)
			return strings.EqualFold(l.Address.Trtype, tr) && l.Address.Trsvcid == port &&
				(l.Address.Traddr == host || (ip != nil && ip.IsUnspecified()))
		}) {
			continue
		}
		if transports == nil {
			var ts []struct {
				Trtype string `json:"trtype"`
			}
			if err := t.rpc.call(ctx, "nvmf_get_transports", nil, &ts); err != nil {
				return err
			}
			transports = map[string]bool{}
			for _, x := range ts {
				transports[strings.ToUpper(x.Trtype)] = true
			}
		}
		if !transports[strings.ToUpper(tr)] {
			if err := t.rpc.call(ctx, "nvmf_create_transport", map[string]string{"trtype": strings.ToUpper(tr)}, nil); err != nil {
				return err
			}
			transports[strings.ToUpper(tr)] = true
		}
		fam := "IPv4"
		if strings.Contains(host, ":") {
			fam = "IPv6"
		}
		la := map[string]string{"trtype": strings.ToUpper(tr), "adrfam": fam, "traddr": host, "trsvcid": port}
		if err := t.rpc.call(ctx, "nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": la}, nil); err != nil {
			return fmt.Errorf("target %s: listen on %s for %s: %w", t.Name, a, nqn, err)
		}
	}
	return nil
}

// rpcStatus turns a target's error into a gRPC status: Unavailable where
// the target could not be asked, Internal where it refused.
func rpcStatus(err error) error {
	if _, ok := err.(*rpcError); ok {
		return status.Error(codes.Internal, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// --- CreateVolume ---

// volumeSize is the size to create for r: the required bytes (or
// DefaultVolumeSize) rounded up to whole MiB, within the limit.
func volumeSize(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Error(codes.InvalidArgument, "capacity_range: negative")
	}
	size := req
	if size == 0 {
		size = DefaultVolumeSize
		if lim > 0 && lim < size {
			size = lim
		}
	}
	size = (size + volumeAlign - 1) / volumeAlign * volumeAlign
	if lim > 0 && size > lim {
		size = lim / volumeAlign * volumeAlign
		if size < req || size == 0 {
			return 0, status.Errorf(codes.OutOfRange, "capacity_range: required %d, limit %d: volumes come in whole MiB", req, lim)
		}
	}
	return size, nil
}

// fits reports whether an existing volume of size bytes satisfies r.
func fits(size int64, r *csi.CapacityRange) bool {
	return size >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || size <= r.GetLimitBytes())
}

// allowedTargets reads the StorageClass parameters: the targets a volume
// may go to (nil: any).
func (d *Driver) allowedTargets(params map[string]string) (map[string]bool, error) {
	var allowed map[string]bool
	for k, v := range params {
		switch {
		case k == ParamTargets:
			allowed = map[string]bool{}
			for _, n := range strings.Split(v, ",") {
				n = strings.TrimSpace(n)
				if d.target(n) == nil {
					return nil, status.Errorf(codes.InvalidArgument, "parameters: %s: no target %q in the controller's configuration", ParamTargets, n)
				}
				allowed[n] = true
			}
		case strings.HasPrefix(k, "csi.storage.k8s.io/"):
		default:
			return nil, status.Errorf(codes.InvalidArgument, "parameters: %q: unknown (flashpath takes %q)", k, ParamTargets)
		}
	}
	return allowed, nil
}

// matches reports whether the target's segments include all of top's.
func (t *target) matches(top *csi.Topology) bool {
	for k, v := range top.GetSegments() {
		if t.Topology[k] != v {
			return false
		}
	}
	return true
}

func (t *target) topology() []*csi.Topology {
	if len(t.Topology) == 0 {
		return nil
	}
	return []*csi.Topology{{Segments: t.Topology}}
}

func (d *Driver) volume(t *target, v *volumeInfo) *csi.Volume {
	return &csi.Volume{VolumeId: volumeID(t.Name, v.Name), CapacityBytes: v.Size, AccessibleTopology: t.topology(),
		VolumeContext: d.publishContext(t, v.Name)}
}

// publishContext is what the node needs to connect: the subsystem and the
// target's addresses.
func (d *Driver) publishContext(t *target, hash string) map[string]string {
	return map[string]string{"nqn": volumeNQN(hash), "addresses": strings.Join(t.Addresses, ","), "target": t.Name}
}

func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name: missing")
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source: flashpath has no snapshots or clones yet")
	}
	if req.GetMutableParameters() != nil {
		return nil, status.Error(codes.InvalidArgument, "mutable_parameters: flashpath has none")
	}
	size, err := volumeSize(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	allowed, err := d.allowedTargets(req.GetParameters())
	if err != nil {
		return nil, err
	}
	h := volumeHash(req.GetName())
	defer d.lock(h)()

	// Idempotent by name: the hash of the name is the volume's name on
	// whichever target has it, so every target is asked, and none may
	// be left out (it could hold the volume from an earlier try).
	lists := make([]*volumeList, len(d.targets))
	for i, t := range d.targets {
		l, err := t.volumes(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v: a volume named %q may be there: not creating it elsewhere until it answers", err, req.GetName())
		}
		lists[i] = l
		if v := l.find(h); v != nil {
			if !fits(v.Size, req.GetCapacityRange()) {
				return nil, status.Errorf(codes.AlreadyExists, "volume %q exists on target %s with %d bytes, outside the requested range", req.GetName(), t.Name, v.Size)
			}
			if err := t.export(ctx, v); err != nil {
				return nil, rpcStatus(err)
			}
			v.Bdev = v.Name
			return &csi.CreateVolumeResponse{Volume: d.volume(t, v)}, nil
		}
	}

	// Place it: the requisite topologies rule targets out, the preferred
	// ones (in order) come first, then the most free space.
	type cand struct {
		t    *target
		rank int
		free int64
	}
	var cands []cand
	why := "no target in the StorageClass's targets"
	for i, t := range d.targets {
		if allowed != nil && !allowed[t.Name] {
			continue
		}
		ar := req.GetAccessibilityRequirements()
		if rq := ar.GetRequisite(); len(rq) > 0 && !slices.ContainsFunc(rq, t.matches) {
			why = "no target in the requisite topology"
			continue
		}
		if lists[i].Free < size {
			why = fmt.Sprintf("no target with %d bytes free", size)
			continue
		}
		rank := slices.IndexFunc(ar.GetPreferred(), t.matches)
		if rank < 0 {
			rank = len(ar.GetPreferred())
		}
		cands = append(cands, cand{t, rank, lists[i].Free})
	}
	if len(cands) == 0 {
		return nil, status.Errorf(codes.ResourceExhausted, "volume %q (%d bytes): %s", req.GetName(), size, why)
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].rank != cands[j].rank {
			return cands[i].rank < cands[j].rank
		}
		return cands[i].free > cands[j].free
	})
	t := cands[0].t
	v := &volumeInfo{Name: h, Size: size}
	if err := t.export(ctx, v); err != nil {
		return nil, rpcStatus(err)
	}
	d.log.Info("volume created", "volume", req.GetName(), "id", volumeID(t.Name, h), "size", size, "target", t.Name)
	return &csi.CreateVolumeResponse{Volume: d.volume(t, v)}, nil
}

// --- DeleteVolume ---

// volumeRef is a volume ID resolved: its target, name hash and subsystem.
type volumeRef struct {
	t         *target
	hash, nqn string
}

// resolve finds the target of volume ID id; false when id is no volume
// of this controller's targets.
func (d *Driver) resolve(id string) (volumeRef, bool) {
	tn, h, ok := parseVolumeID(id)
	t := d.target(tn)
	if !ok || t == nil {
		return volumeRef{}, false
	}
	return volumeRef{t: t, hash: h, nqn: volumeNQN(h)}, true
}

// notOurs is the NotFound of a volume ID resolve does not know.
func notOurs(id string) error {
	return status.Errorf(codes.NotFound, "volume %s: not a flashpath volume of this controller's targets", id)
}

// lockSubsystem locks volume v (the caller runs unlock when it is done)
// and reads its subsystem on the target: nil when there is none.
func (d *Driver) lockSubsystem(ctx context.Context, v volumeRef) (ss *subsystemInfo, unlock func(), err error) {
	unlock = d.lock(v.hash)
	if ss, err = v.t.subsystem(ctx, v.nqn); err != nil {
		unlock()
		return nil, nil, rpcStatus(err)
	}
	return ss, unlock, nil
}

func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id: missing")
	}
	v, ok := d.resolve(req.GetVolumeId())
	if !ok {
		return &csi.DeleteVolumeResponse{}, nil // never made here: gone
	}
	ss, unlock, err := d.lockSubsystem(ctx, v)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, h, nqn := v.t, v.hash, v.nqn
	if ss != nil {
		if hs := ss.hosts(); len(hs) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is published to %s: unpublish it first", req.GetVolumeId(), strings.Join(hs, ", "))
		}
		if err := t.rpc.call(ctx, "nvmf_delete_subsystem", map[string]string{"nqn": nqn}, nil); err != nil && !isRPC(err, codeInvalidParams) {
			return nil, rpcStatus(err)
		}
	}
	if err := t.rpc.call(ctx, "flashpath_volume_delete", map[string]string{"name": h}, nil); err != nil && !isRPC(err, codeNoDevice) {
		return nil, rpcStatus(err)
	}
	d.log.Info("volume deleted", "id", req.GetVolumeId())
	return &csi.DeleteVolumeResponse{}, nil
}

// --- publish ---

func (d *Driver) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id: missing")
	case req.GetNodeId() == "":
		return nil, status.Error(codes.InvalidArgument, "node_id: missing")
	}
	if err := checkCap(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	v, ok := d.resolve(req.GetVolumeId())
	if !ok {
		return nil, notOurs(req.GetVolumeId())
	}
	if !validNQN(req.GetNodeId()) {
		return nil, status.Errorf(codes.NotFound, "node %q: flashpath's node IDs are host NQNs (nqn....)", req.GetNodeId())
	}
	ss, unlock, err := d.lockSubsystem(ctx, v)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, h, nqn := v.t, v.hash, v.nqn
	if ss == nil {
		// No subsystem: no volume, or a target restarted since, which
		// kept the file but not what its JSON-RPC made: export it again.
		l, err := t.volumes(ctx)
		if err != nil {
			return nil, rpcStatus(err)
		}
		v := l.find(h)
		if v == nil {
			return nil, status.Errorf(codes.NotFound, "volume %s: not on target %s", req.GetVolumeId(), t.Name)
		}
		if err := t.export(ctx, v); err != nil {
			return nil, rpcStatus(err)
		}
		d.log.Info("volume exported again", "id", req.GetVolumeId(), "target", t.Name)
		ss = &subsystemInfo{}
	}
	hs := ss.hosts()
	if others := slices.DeleteFunc(slices.Clone(hs), func(n string) bool { return n == req.GetNodeId() }); len(others) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is published to %s: single-node volumes go to one node at a time", req.GetVolumeId(), strings.Join(others, ", "))
	}
	if !slices.Contains(hs, req.GetNodeId()) {
		if err := t.rpc.call(ctx, "nvmf_subsystem_add_host", map[string]string{"nqn": nqn, "host": req.GetNodeId()}, nil); err != nil {
			return nil, rpcStatus(err)
		}
		d.log.Info("volume published", "id", req.GetVolumeId(), "node", req.GetNodeId())
	}
	return &csi.ControllerPublishVolumeResponse{PublishContext: d.publishContext(t, h)}, nil
}

func (d *Driver) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id: missing")
	}
	v, ok := d.resolve(req.GetVolumeId())
	if !ok {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	ss, unlock, err := d.lockSubsystem(ctx, v)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ss == nil {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	t, nqn := v.t, v.nqn
	for _, host := range ss.hosts() {
		if req.GetNodeId() != "" && host != req.GetNodeId() {
			continue
		}
		if err := t.rpc.call(ctx, "nvmf_subsystem_remove_host", map[string]string{"nqn": nqn, "host": host}, nil); err != nil {
			return nil, rpcStatus(err)
		}
		d.log.Info("volume unpublished", "id", req.GetVolumeId(), "node", host)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// --- queries ---

func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id: missing")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities: none given")
	}
	v, ok := d.resolve(req.GetVolumeId())
	if !ok {
		return nil, notOurs(req.GetVolumeId())
	}
	t, h := v.t, v.hash
	l, err := t.volumes(ctx)
	if err != nil {
		return nil, rpcStatus(err)
	}
	if l.find(h) == nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: not on target %s", req.GetVolumeId(), t.Name)
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters()}}, nil
}

// ListVolumes lists every target's volumes, sorted by ID, with the
// nodes each is published to (its subsystem's hosts); the token is the
// index of the next entry. A target that does not answer is left out (and
// logged).
func (d *Driver) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_entries: negative")
	}
	var all []*csi.ListVolumesResponse_Entry
	for _, t := range d.targets {
		l, err := t.volumes(ctx)
		var subs []subsystemInfo
		if err == nil {
			err = t.rpc.call(ctx, "nvmf_get_subsystems", nil, &subs)
		}
		if err != nil {
			d.log.Warn("list volumes: target left out", "target", t.Name, "err", err)
			continue
		}
		hosts := map[string][]string{}
		for i := range subs {
			hosts[subs[i].NQN] = subs[i].hosts()
		}
		for i := range l.Volumes {
			v := &l.Volumes[i]
			if !isVolumeHash(v.Name) {
				continue // made by hand (flashpath_volume_create), not by CSI
			}
			all = append(all, &csi.ListVolumesResponse_Entry{Volume: d.volume(t, v),
				Status: &csi.ListVolumesResponse_VolumeStatus{PublishedNodeIds: hosts[volumeNQN(v.Name)]}})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Volume.VolumeId < all[j].Volume.VolumeId })
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(all) {
			return nil, status.Errorf(codes.Aborted, "starting_token %q: not one of this driver's (or the list shrank): list again from the start", tok)
		}
		start = n
	}
	end := len(all)
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
	}
	resp := &csi.ListVolumesResponse{Entries: all[start:end]}
	if end < len(all) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}

// GetCapacity is the free space of the targets in the topology and the
// StorageClass's targets: available is their sum, the largest volume the
// most any one has.
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if len(req.GetVolumeCapabilities()) > 0 && checkCaps(req.GetVolumeCapabilities()) != nil {
		return &csi.GetCapacityResponse{}, nil
	}
	allowed, err := d.allowedTargets(req.GetParameters())
	if err != nil {
		return nil, err
	}
	var sum, most int64
	for _, t := range d.targets {
		if (allowed != nil && !allowed[t.Name]) || !t.matches(req.GetAccessibleTopology()) {
			continue
		}
		l, err := t.volumes(ctx)
		if err != nil {
			d.log.Warn("capacity: target left out", "target", t.Name, "err", err)
			continue
		}
		sum += l.Free
		most = max(most, l.Free/volumeAlign*volumeAlign)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: sum, MaximumVolumeSize: wrapperspb.Int64(most)}, nil
}

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}
