package target

import (
	"fmt"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Identify Controller constants for every controller of the target.
const (
	// InCapsuleData is the in-capsule data an I/O queue accepts (IOCCSZ).
	InCapsuleData = 8192
)

func (c *Controller) identifyController() nvmeof.IdentifyController {
	t := c.t
	id := nvmeof.IdentifyController{
		Serial:    c.subsys.cfg.Serial,
		Model:     c.subsys.cfg.Model,
		Firmware:  t.opts.FirmwareRev,
		RAB:       6,
		CMIC:      nvmeof.CMICMultiCtrl,
		MDTS:      MaxTransferShift,
		CntlID:    c.id,
		Version:   nvmeof.VS2_0,
		CTRATT:    nvmeof.CTRATTHostID128,
		CntrlType: nvmeof.CtrlTypeIO,
		AERL:      AERLimit - 1,
		ACL:       3,
		FRMW:      1<<1 | 1, // one slot, read-only
		LPA:       nvmeof.LPASmartPerNS | nvmeof.LPACommandEffects | nvmeof.LPAExtendedData,
		ELPE:      errLogEntries - 1,
		KAS:       10, // 100 ms units: 1 s granularity
		SQES:      0x66,
		CQES:      0x44,
		MaxCmd:    uint16(t.opts.MaxQueueDepth),
		NN:        MaxNSID,
		MNAN:      MaxNSID,
		ONCS:      nvmeof.ONCSCompare | nvmeof.ONCSDSM | nvmeof.ONCSWriteZeroes | nvmeof.ONCSResv,
		VWC:       nvmeof.VWCFlushBroadcast,
		SGLS:      nvmeof.SGLSSupported,
		SubNQN:    c.subsys.cfg.NQN,
		IOCCSZ:    uint32(nvmeof.SQESize+c.tr.InlineData) / 16,
		IORCSZ:    nvmeof.CQESize / 16,
		MSDBD:     1,
		OAES:      nvmeof.OAESNamespaceAttr | nvmeof.OAESANAChange,
		ANATT:     ANATransitionTime,
		ANACAP: nvmeof.ANACAPOptimized | nvmeof.ANACAPNonOptimized | nvmeof.ANACAPInaccessible |
			nvmeof.ANACAPPersistentLoss | nvmeof.ANACAPChange | nvmeof.ANACAPGrpIDStatic,
		ANAGRPMAX: MaxANAGroups,
		NANAGRPID: MaxANAGroups,
	}
	id.CMIC |= nvmeof.CMICANA
	if c.tr.InlineData > 0 {
		id.SGLS |= nvmeof.SGLSOffsetSupported
	}
	if c.tr.KeyedSGL {
		id.SGLS |= nvmeof.SGLSKeyed
	}
	if c.hasVWC() {
		id.VWC |= nvmeof.VWCPresent
	}
	if c.subsys.discovery {
		id.CntrlType = nvmeof.CtrlTypeDiscovery
		id.OAES = nvmeof.OAESDiscoveryChange
		id.ONCS, id.VWC, id.NN, id.MNAN = 0, 0, 0, 0
		id.CMIC, id.ANATT, id.ANACAP, id.ANAGRPMAX, id.NANAGRPID = nvmeof.CMICMultiCtrl, 0, 0, 0, 0
		id.Model = "flashpath discovery"
		id.Serial = "flashpath-discovery"
	}
	return id
}

func (c *Controller) identify(q *Queue, r *Request) nvmeof.Status {
	if len(r.Data) < nvmeof.IdentifySize {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	b := r.Data
	nsid := r.Cmd.NSID()
	tb := c.subsys.ns.Load()
	switch cns := r.Cmd.CNS(); cns {
	case nvmeof.CNSController:
		id := c.identifyController()
		if err := id.Encode(b); err != nil {
			return nvmeof.StatusInternalError
		}
	case nvmeof.CNSNamespace:
		if nsid == 0 || (nsid > MaxNSID && nsid != 0xFFFFFFFF) || c.subsys.discovery {
			return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
		}
		clear(b[:nvmeof.IdentifySize])
		if ns := tb.get(nsid); ns != nil {
			idns := ns.identify()
			if err := idns.Encode(b); err != nil {
				return nvmeof.StatusInternalError
			}
		}
	case nvmeof.CNSActiveNSList:
		if nsid >= 0xFFFFFFFE {
			return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
		}
		nvmeof.EncodeNSList(b, tb.ids, nsid)
	case nvmeof.CNSNSDescList:
		ns := tb.get(nsid)
		if ns == nil {
			return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
		}
		err := nvmeof.EncodeNSDescList(b, []nvmeof.NSDescriptor{
			{Type: nvmeof.NIDTEUI64, ID: ns.EUI64[:]},
			{Type: nvmeof.NIDTNGUID, ID: ns.NGUID[:]},
			{Type: nvmeof.NIDTUUID, ID: ns.UUID[:]},
			{Type: nvmeof.NIDTCSI, ID: []byte{0}},
		})
		if err != nil {
			return nvmeof.StatusInternalError
		}
	case nvmeof.CNSCSController, nvmeof.CNSCSNamespace:
		// NVM command set specific structures: all fields zero (no limits).
		if r.Cmd.CSI() != 0 {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		if cns == nvmeof.CNSCSNamespace && tb.get(nsid) == nil {
			return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
		}
		clear(b[:nvmeof.IdentifySize])
	default:
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	clear(b[nvmeof.IdentifySize:])
	return nvmeof.StatusSuccess
}

func (ns *Namespace) identify() nvmeof.IdentifyNamespace {
	id := nvmeof.IdentifyNamespace{
		NSZE: ns.nblocks, NCAP: ns.nblocks, NUSE: ns.nblocks,
		NSFEAT:   nvmeof.NSFEATThin,
		DLFEAT:   nvmeof.DLFEATZeroes,
		NMIC:     1, // may be attached to several controllers
		RESCAP:   nvmeof.RescapTypes | nvmeof.RescapIEKEY,
		ANAGRPID: ns.anaGroup,
		NGUID:    ns.NGUID,
		EUI64:    ns.EUI64,
	}
	if ro, ok := ns.Backend.(interface{ ReadOnly() bool }); ok && ro.ReadOnly() {
		id.NSATTR = nvmeof.NSATTRWriteProtected
	}
	if ns.resv.file != "" {
		id.RESCAP |= nvmeof.RescapPTPL
	}
	id.LBAF[0] = nvmeof.LBAFormat{LBADS: ns.blkShift}
	capBytes := uint64(ns.Backend.Size())
	for i := 0; i < 8; i++ {
		id.NVMCAP[i] = byte(capBytes >> (8 * i))
	}
	return id
}

func (c *Controller) getLogPage(q *Queue, r *Request) nvmeof.Status {
	want := int(r.Cmd.LogNumDwords()) * 4
	if want > len(r.Data) {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	off := r.Cmd.LogOffset()
	if off%4 != 0 {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	var page []byte
	lid := r.Cmd.LID()
	if c.subsys.discovery && lid != nvmeof.LogDiscovery {
		return nvmeof.StatusInvalidLogPage | nvmeof.StatusDNR
	}
	switch lid {
	case nvmeof.LogError:
		c.mu.Lock()
		page = make([]byte, errLogEntries*nvmeof.ErrorLogEntrySize)
		for i := range c.errLog {
			e := c.errLog[len(c.errLog)-1-i] // newest first
			e.Encode(page[i*nvmeof.ErrorLogEntrySize:])
		}
		c.mu.Unlock()
	case nvmeof.LogSMART:
		page = make([]byte, nvmeof.SMARTLogSize)
		s := c.smart(r.Cmd.NSID())
		s.Encode(page)
	case nvmeof.LogFirmwareSlot:
		page = make([]byte, nvmeof.FirmwareSlotLogSize)
		nvmeof.EncodeFirmwareSlotLog(page, c.t.opts.FirmwareRev)
	case nvmeof.LogChangedNSList:
		page = make([]byte, nvmeof.ChangedNSListSize)
		c.mu.Lock()
		nvmeof.EncodeChangedNSList(page, c.changedNS)
		c.changedNS = c.changedNS[:0]
		if !r.Cmd.RAE() {
			c.unmask(aenNSChanged)
		}
		c.mu.Unlock()
	case nvmeof.LogANA:
		page = c.anaLog(r.Cmd.LSP()&nvmeof.ANALogRGO != 0)
		if !r.Cmd.RAE() {
			c.mu.Lock()
			c.unmask(aenANAChange)
			c.mu.Unlock()
		}
	case nvmeof.LogResvNotification:
		page = c.resvLogPage(r.Cmd.RAE())
	case nvmeof.LogCommandEffects:
		page = make([]byte, nvmeof.CommandEffectsLogSize)
		nvmeof.EncodeCommandEffects(page, &adminEffects, &ioEffects)
	case nvmeof.LogDiscovery:
		if !c.subsys.discovery {
			return nvmeof.StatusInvalidLogPage | nvmeof.StatusDNR
		}
		entries := c.t.discoveryEntries(c.hostNQN, q.local)
		if !r.Cmd.RAE() {
			c.mu.Lock()
			c.unmask(aenDiscovery)
			c.mu.Unlock()
		}
		page = make([]byte, nvmeof.DiscoveryLogSize(len(entries)))
		if err := nvmeof.EncodeDiscoveryLog(page, c.t.discGen.Load(), entries); err != nil {
			c.log.Error("discovery log", "err", err)
			return nvmeof.StatusInternalError
		}
	default:
		return nvmeof.StatusInvalidLogPage | nvmeof.StatusDNR
	}
	if off > uint64(len(page)) {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	n := copy(r.Data[:want], page[off:])
	clear(r.Data[n:])
	return nvmeof.StatusSuccess
}

// smart reports health for one namespace, or all of them (NSID 0 or FFFFFFFFh).
func (c *Controller) smart(nsid uint32) nvmeof.SMARTLog {
	s := nvmeof.SMARTLog{
		TemperatureK:   300,
		AvailableSpare: 100,
		SpareThreshold: 10,
		PowerCycles:    1,
		PowerOnHours:   uint64(c.t.opts.Now().Sub(c.t.start) / time.Hour),
	}
	var br, bw uint64
	for _, ns := range c.subsys.Namespaces() {
		if nsid != 0 && nsid != 0xFFFFFFFF && ns.ID != nsid {
			continue
		}
		st := ns.Stats()
		s.HostReads += st.Reads
		s.HostWrites += st.Writes
		br += st.BytesRead
		bw += st.BytesWritten
		s.MediaErrors += st.Errors
	}
	// Data units are thousands of 512-byte units, rounded up.
	s.DataUnitsRead = (br/512 + 999) / 1000
	s.DataUnitsWritten = (bw/512 + 999) / 1000
	c.mu.Lock()
	s.NumErrLogEntries = c.errCount
	c.mu.Unlock()
	return s
}

var adminEffects, ioEffects [256]uint32

func init() {
	for _, op := range []uint8{nvmeof.AdminGetLogPage, nvmeof.AdminIdentify, nvmeof.AdminAbort,
		nvmeof.AdminSetFeatures, nvmeof.AdminGetFeatures, nvmeof.AdminAsyncEvent, nvmeof.AdminKeepAlive} {
		adminEffects[op] = nvmeof.CSECSUPP
	}
	adminEffects[nvmeof.OpFabrics] = nvmeof.CSECSUPP
	for _, op := range []uint8{nvmeof.NVMFlush, nvmeof.NVMRead, nvmeof.NVMCompare,
		nvmeof.NVMResvRegister, nvmeof.NVMResvReport, nvmeof.NVMResvAcquire, nvmeof.NVMResvRelease} {
		ioEffects[op] = nvmeof.CSECSUPP
	}
	for _, op := range []uint8{nvmeof.NVMWrite, nvmeof.NVMWriteZeroes, nvmeof.NVMDSM} {
		ioEffects[op] = nvmeof.CSECSUPP | nvmeof.CSELBCC
	}
}

// String describes the controller for logs.
func (c *Controller) String() string {
	return fmt.Sprintf("ctrl %d on %s for %s", c.id, c.subsys.cfg.NQN, c.hostNQN)
}
