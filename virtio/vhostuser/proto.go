package vhostuser

import "fmt"

// Request is the request field of a message header: the type of a front
// end's message (VHOST_USER_*, QEMU's docs/interop/vhost-user.rst, "Front-end
// message types").
type Request uint32

// Front-end requests. The back end answers those this package implements
// (see Backend); any other is refused.
const (
	GetFeatures         Request = 1  // VHOST_USER_GET_FEATURES
	SetFeatures         Request = 2  // VHOST_USER_SET_FEATURES
	SetOwner            Request = 3  // VHOST_USER_SET_OWNER
	ResetOwner          Request = 4  // VHOST_USER_RESET_OWNER
	SetMemTable         Request = 5  // VHOST_USER_SET_MEM_TABLE
	SetLogBase          Request = 6  // VHOST_USER_SET_LOG_BASE
	SetLogFD            Request = 7  // VHOST_USER_SET_LOG_FD
	SetVringNum         Request = 8  // VHOST_USER_SET_VRING_NUM
	SetVringAddr        Request = 9  // VHOST_USER_SET_VRING_ADDR
	SetVringBase        Request = 10 // VHOST_USER_SET_VRING_BASE
	GetVringBase        Request = 11 // VHOST_USER_GET_VRING_BASE
	SetVringKick        Request = 12 // VHOST_USER_SET_VRING_KICK
	SetVringCall        Request = 13 // VHOST_USER_SET_VRING_CALL
	SetVringErr         Request = 14 // VHOST_USER_SET_VRING_ERR
	GetProtocolFeatures Request = 15 // VHOST_USER_GET_PROTOCOL_FEATURES
	SetProtocolFeatures Request = 16 // VHOST_USER_SET_PROTOCOL_FEATURES
	GetQueueNum         Request = 17 // VHOST_USER_GET_QUEUE_NUM
	SetVringEnable      Request = 18 // VHOST_USER_SET_VRING_ENABLE
	SendRARP            Request = 19 // VHOST_USER_SEND_RARP
	NetSetMTU           Request = 20 // VHOST_USER_NET_SET_MTU
	SetSlaveReqFD       Request = 21 // VHOST_USER_SET_SLAVE_REQ_FD
	IOTLBMsg            Request = 22 // VHOST_USER_IOTLB_MSG
	SetVringEndian      Request = 23 // VHOST_USER_SET_VRING_ENDIAN
	GetConfig           Request = 24 // VHOST_USER_GET_CONFIG
	SetConfig           Request = 25 // VHOST_USER_SET_CONFIG
	ResetDevice         Request = 34 // VHOST_USER_RESET_DEVICE
	VringKick           Request = 35 // VHOST_USER_VRING_KICK
	GetMaxMemSlots      Request = 36 // VHOST_USER_GET_MAX_MEM_SLOTS
	AddMemReg           Request = 37 // VHOST_USER_ADD_MEM_REG
	RemMemReg           Request = 38 // VHOST_USER_REM_MEM_REG
	SetStatus           Request = 39 // VHOST_USER_SET_STATUS
	GetStatus           Request = 40 // VHOST_USER_GET_STATUS
)

var requestNames = map[Request]string{
	GetFeatures:         "GET_FEATURES",
	SetFeatures:         "SET_FEATURES",
	SetOwner:            "SET_OWNER",
	ResetOwner:          "RESET_OWNER",
	SetMemTable:         "SET_MEM_TABLE",
	SetLogBase:          "SET_LOG_BASE",
	SetLogFD:            "SET_LOG_FD",
	SetVringNum:         "SET_VRING_NUM",
	SetVringAddr:        "SET_VRING_ADDR",
	SetVringBase:        "SET_VRING_BASE",
	GetVringBase:        "GET_VRING_BASE",
	SetVringKick:        "SET_VRING_KICK",
	SetVringCall:        "SET_VRING_CALL",
	SetVringErr:         "SET_VRING_ERR",
	GetProtocolFeatures: "GET_PROTOCOL_FEATURES",
	SetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	GetQueueNum:         "GET_QUEUE_NUM",
	SetVringEnable:      "SET_VRING_ENABLE",
	SendRARP:            "SEND_RARP",
	NetSetMTU:           "NET_SET_MTU",
	SetSlaveReqFD:       "SET_SLAVE_REQ_FD",
	IOTLBMsg:            "IOTLB_MSG",
	SetVringEndian:      "SET_VRING_ENDIAN",
	GetConfig:           "GET_CONFIG",
	SetConfig:           "SET_CONFIG",
	ResetDevice:         "RESET_DEVICE",
	VringKick:           "VRING_KICK",
	GetMaxMemSlots:      "GET_MAX_MEM_SLOTS",
	AddMemReg:           "ADD_MEM_REG",
	RemMemReg:           "REM_MEM_REG",
	SetStatus:           "SET_STATUS",
	GetStatus:           "GET_STATUS",
}

// String returns the spec's name, "VHOST_USER_GET_FEATURES", or the
// number for a request the spec does not name here.
func (r Request) String() string {
	if s, ok := requestNames[r]; ok {
		return "VHOST_USER_" + s
	}
	return fmt.Sprintf("request %d", uint32(r))
}

// Header flags (the flags field of every message).
const (
	// Version is the protocol version, in the flags' low 2 bits.
	Version = 0x1
	// VersionMask selects the version bits of the flags.
	VersionMask = 0x3
	// FlagReply marks a reply from the back end.
	FlagReply = 0x4
	// FlagNeedReply asks for a reply: the request's own, or a REPLY_ACK
	// u64 for one that has none. Front ends set it once
	// ProtocolFReplyAck is negotiated; the back end answers it always.
	FlagNeedReply = 0x8
)

// FProtocolFeatures is the bit number of VHOST_USER_F_PROTOCOL_FEATURES
// among the virtio features of GET_FEATURES and SET_FEATURES: the back end
// supports GET_ and SET_PROTOCOL_FEATURES, and a ring starts disabled
// until SET_VRING_ENABLE.
const FProtocolFeatures = 30

// Protocol feature bits (VHOST_USER_PROTOCOL_F_*), as bit numbers.
const (
	ProtocolFMQ       = 0 // VHOST_USER_PROTOCOL_F_MQ: GET_QUEUE_NUM
	ProtocolFReplyAck = 3 // VHOST_USER_PROTOCOL_F_REPLY_ACK: NEED_REPLY answered
	ProtocolFConfig   = 9 // VHOST_USER_PROTOCOL_F_CONFIG: GET_CONFIG and SET_CONFIG
)

// ProtocolFeatures are the protocol features the back end offers.
const ProtocolFeatures uint64 = 1<<ProtocolFMQ | 1<<ProtocolFReplyAck | 1<<ProtocolFConfig

// Limits on what the front end can send.
const (
	// HeaderSize is the size of a message header: request, flags, size.
	HeaderSize = 12
	// MaxPayload bounds the payload of a message. The largest the back
	// end accepts is SET_MEM_TABLE with MaxRegions regions (8 + 8·32 =
	// 264 bytes) or GET_CONFIG/SET_CONFIG with MaxConfigSize bytes
	// (12 + 256); a header announcing more than MaxPayload ends the
	// connection before anything more is read.
	MaxPayload = 4096
	// MaxFDs bounds the file descriptors one message carries: those of
	// SET_MEM_TABLE's regions (VHOST_MEMORY_BASELINE_NREGIONS). A message
	// with more is refused and all of them are closed.
	MaxFDs = 8
	// MaxRegions is the largest memory table, VHOST_MEMORY_BASELINE_NREGIONS.
	MaxRegions = 8
	// MaxConfigSize bounds GET_CONFIG and SET_CONFIG
	// (VHOST_USER_MAX_CONFIG_SIZE).
	MaxConfigSize = 256
)

// Payload sizes.
const (
	u64Size        = 8
	vringStateSize = 8      // struct vhost_vring_state: index, num
	vringAddrSize  = 40     // struct vhost_vring_addr
	memHeaderSize  = 8      // num regions, padding
	regionSize     = 32     // guest address, size, user address, mmap offset
	configHdrSize  = 12     // offset, size, flags
	vringIndexMask = 0xff   // SET_VRING_KICK/CALL/ERR: index in bits 0-7
	vringNoFD      = 0x100  // ... and bit 8: no file descriptor
	vringFDMask    = 0x1ff  // bits a KICK/CALL/ERR u64 may have
	vringFLog      = 1 << 0 // VHOST_VRING_F_LOG in vhost_vring_addr.flags
)
