package gpio

import (
	"encoding/binary"
	"fmt"
)

// DeviceID is the virtio device ID of a GPIO device (virtio 1.2,
// "GPIO Device / Device ID"; VIRTIO_ID_GPIO in include/uapi/linux/virtio_ids.h).
const DeviceID = 41

// Virtqueue indices ("GPIO Device / Virtqueues"). The eventq exists only if
// VIRTIO_GPIO_F_IRQ has been negotiated.
const (
	RequestQueue = 0 // requestq
	EventQueue   = 1 // eventq
)

// FeatureIRQ is the bit number of VIRTIO_GPIO_F_IRQ: the device supports
// interrupts on GPIO lines. The feature mask is 1 << FeatureIRQ.
const FeatureIRQ = 0

// MsgType is the type field of a requestq message (VIRTIO_GPIO_MSG_*).
type MsgType uint16

// Message types. The spec calls type 1 VIRTIO_GPIO_MSG_GET_LINE_NAMES and
// type 6 VIRTIO_GPIO_MSG_SET_IRQ_TYPE; the kernel header calls them
// VIRTIO_GPIO_MSG_GET_NAMES and VIRTIO_GPIO_MSG_IRQ_TYPE.
const (
	MsgTypeGetNames     MsgType = 0x0001 // VIRTIO_GPIO_MSG_GET_NAMES
	MsgTypeGetDirection MsgType = 0x0002 // VIRTIO_GPIO_MSG_GET_DIRECTION
	MsgTypeSetDirection MsgType = 0x0003 // VIRTIO_GPIO_MSG_SET_DIRECTION
	MsgTypeGetValue     MsgType = 0x0004 // VIRTIO_GPIO_MSG_GET_VALUE
	MsgTypeSetValue     MsgType = 0x0005 // VIRTIO_GPIO_MSG_SET_VALUE
	MsgTypeSetIRQType   MsgType = 0x0006 // VIRTIO_GPIO_MSG_IRQ_TYPE
)

var msgTypeNames = map[MsgType]string{
	MsgTypeGetNames:     "GET_NAMES",
	MsgTypeGetDirection: "GET_DIRECTION",
	MsgTypeSetDirection: "SET_DIRECTION",
	MsgTypeGetValue:     "GET_VALUE",
	MsgTypeSetValue:     "SET_VALUE",
	MsgTypeSetIRQType:   "SET_IRQ_TYPE",
}

// String returns the spec name of t without its VIRTIO_GPIO_MSG_ prefix.
func (t MsgType) String() string {
	if s, ok := msgTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(%#x)", uint16(t))
}

// Status is the status field of a requestq response (VIRTIO_GPIO_STATUS_*).
type Status uint8

// Response status values.
const (
	StatusOK  Status = 0x0 // VIRTIO_GPIO_STATUS_OK
	StatusERR Status = 0x1 // VIRTIO_GPIO_STATUS_ERR
)

// String returns "OK", "ERR" or the number.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusERR:
		return "ERR"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Direction is a line direction (VIRTIO_GPIO_DIRECTION_*).
type Direction uint8

// Line directions. DirectionNone means the line is not in use (released).
const (
	DirectionNone Direction = 0x00 // VIRTIO_GPIO_DIRECTION_NONE
	DirectionOut  Direction = 0x01 // VIRTIO_GPIO_DIRECTION_OUT
	DirectionIn   Direction = 0x02 // VIRTIO_GPIO_DIRECTION_IN
)

// Valid reports whether d is one of the three directions of the spec.
func (d Direction) Valid() bool { return d <= DirectionIn }

// String returns "none", "out", "in" or the number.
func (d Direction) String() string {
	switch d {
	case DirectionNone:
		return "none"
	case DirectionOut:
		return "out"
	case DirectionIn:
		return "in"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// IRQType is an interrupt trigger type (VIRTIO_GPIO_IRQ_TYPE_*).
// IRQTypeNone disables the interrupt of a line.
type IRQType uint8

// Interrupt trigger types.
const (
	IRQTypeNone        IRQType = 0x00 // VIRTIO_GPIO_IRQ_TYPE_NONE
	IRQTypeEdgeRising  IRQType = 0x01 // VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING
	IRQTypeEdgeFalling IRQType = 0x02 // VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING
	IRQTypeEdgeBoth    IRQType = 0x03 // VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH
	IRQTypeLevelHigh   IRQType = 0x04 // VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH
	IRQTypeLevelLow    IRQType = 0x08 // VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW
)

// Valid reports whether t is one of the six trigger types of the spec.
// Combinations such as EDGE_RISING|LEVEL_HIGH are not trigger types.
func (t IRQType) Valid() bool {
	switch t {
	case IRQTypeNone, IRQTypeEdgeRising, IRQTypeEdgeFalling, IRQTypeEdgeBoth,
		IRQTypeLevelHigh, IRQTypeLevelLow:
		return true
	}
	return false
}

// Edge reports whether t is an edge trigger type.
func (t IRQType) Edge() bool { return t >= IRQTypeEdgeRising && t <= IRQTypeEdgeBoth }

// Level reports whether t is a level trigger type.
func (t IRQType) Level() bool { return t == IRQTypeLevelHigh || t == IRQTypeLevelLow }

// String returns the spec name without its VIRTIO_GPIO_IRQ_TYPE_ prefix.
func (t IRQType) String() string {
	switch t {
	case IRQTypeNone:
		return "NONE"
	case IRQTypeEdgeRising:
		return "EDGE_RISING"
	case IRQTypeEdgeFalling:
		return "EDGE_FALLING"
	case IRQTypeEdgeBoth:
		return "EDGE_BOTH"
	case IRQTypeLevelHigh:
		return "LEVEL_HIGH"
	case IRQTypeLevelLow:
		return "LEVEL_LOW"
	}
	return fmt.Sprintf("IRQType(%#x)", uint8(t))
}

// EventStatus is the status of an eventq response
// (VIRTIO_GPIO_IRQ_STATUS_*).
type EventStatus uint8

// Eventq response status values. EventValid reports an interrupt;
// EventInvalid returns a buffer unused (interrupt disabled, or the buffer
// could not be accepted).
const (
	EventInvalid EventStatus = 0x0 // VIRTIO_GPIO_IRQ_STATUS_INVALID
	EventValid   EventStatus = 0x1 // VIRTIO_GPIO_IRQ_STATUS_VALID
)

// String returns "INVALID", "VALID" or the number.
func (s EventStatus) String() string {
	switch s {
	case EventInvalid:
		return "INVALID"
	case EventValid:
		return "VALID"
	}
	return fmt.Sprintf("EventStatus(%d)", uint8(s))
}

// Wire sizes of the structures of include/uapi/linux/virtio_gpio.h.
const (
	ConfigSize      = 8 // struct virtio_gpio_config
	RequestSize     = 8 // struct virtio_gpio_request
	ResponseSize    = 2 // struct virtio_gpio_response
	IRQRequestSize  = 2 // struct virtio_gpio_irq_request
	IRQResponseSize = 1 // struct virtio_gpio_irq_response
)

// Config is equivalent to struct virtio_gpio_config:
//
//	struct virtio_gpio_config {
//		le16 ngpio;
//		u8 padding[2];
//		le32 gpio_names_size;
//	};
type Config struct {
	NGPIO         uint16 // number of lines
	GPIONamesSize uint32 // size of the GET_NAMES block; 0 if no line is named
}

// Bytes encodes c in little-endian wire format; padding is zero.
func (c Config) Bytes() [ConfigSize]byte {
	var b [ConfigSize]byte
	binary.LittleEndian.PutUint16(b[0:], c.NGPIO)
	binary.LittleEndian.PutUint32(b[4:], c.GPIONamesSize)
	return b
}

// Request is equivalent to struct virtio_gpio_request:
//
//	struct virtio_gpio_request {
//		le16 type;
//		le16 gpio;
//		le32 value;
//	};
type Request struct {
	Type  MsgType
	GPIO  uint16
	Value uint32
}

// Bytes encodes r in little-endian wire format.
func (r Request) Bytes() []byte {
	b := make([]byte, RequestSize)
	binary.LittleEndian.PutUint16(b[0:], uint16(r.Type))
	binary.LittleEndian.PutUint16(b[2:], r.GPIO)
	binary.LittleEndian.PutUint32(b[4:], r.Value)
	return b
}

// ParseRequest decodes a request. It fails unless b is exactly
// RequestSize bytes long.
func ParseRequest(b []byte) (Request, error) {
	if len(b) != RequestSize {
		return Request{}, fmt.Errorf("gpio: request is %d bytes, want %d", len(b), RequestSize)
	}
	return Request{
		Type:  MsgType(binary.LittleEndian.Uint16(b[0:])),
		GPIO:  binary.LittleEndian.Uint16(b[2:]),
		Value: binary.LittleEndian.Uint32(b[4:]),
	}, nil
}

// IRQRequest encodes struct virtio_gpio_irq_request { le16 gpio; }, the
// driver-readable part of an eventq buffer.
func IRQRequest(gpio uint16) []byte {
	return binary.LittleEndian.AppendUint16(nil, gpio)
}

// parseIRQRequest decodes struct virtio_gpio_irq_request.
func parseIRQRequest(b []byte) (uint16, bool) {
	if len(b) != IRQRequestSize {
		return 0, false
	}
	return binary.LittleEndian.Uint16(b), true
}
