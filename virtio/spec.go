package virtio

// Device status bits (virtio 1.2 §2.1), in the order a driver sets them.
const (
	StatusAcknowledge      = 1    // ACKNOWLEDGE: the guest found the device
	StatusDriver           = 2    // DRIVER: the guest has a driver for it
	StatusFeaturesOK       = 8    // FEATURES_OK: feature negotiation is complete
	StatusDriverOK         = 4    // DRIVER_OK: the driver is ready; the device runs
	StatusDeviceNeedsReset = 0x40 // DEVICE_NEEDS_RESET: set by the device on an unrecoverable error
	StatusFailed           = 0x80 // FAILED: the driver gave up on the device
)

// Reserved feature bits (virtio 1.2 §6), as bit numbers: the mask of a
// feature is 1 << bit, as in Linux's virtio_config.h.
const (
	RingFIndirectDesc = 28 // VIRTIO_RING_F_INDIRECT_DESC: indirect descriptor tables
	RingFEventIdx     = 29 // VIRTIO_RING_F_EVENT_IDX: used_event and avail_event
	FVersion1         = 32 // VIRTIO_F_VERSION_1: compliance with virtio 1.x
)

// deviceFeatureMask selects the feature bits that belong to a device type
// (virtio 1.2 §2.2: bits 0 to 23 and 50 to 127); the others are reserved
// for the transport and the queues.
const deviceFeatureMask uint64 = 1<<24 - 1 | (1<<64-1)&^(1<<50-1)

// TransportFeatures are the feature bits the transport and the split
// virtqueue implement and offer on top of the device's own.
const TransportFeatures uint64 = 1<<FVersion1 | 1<<RingFIndirectDesc | 1<<RingFEventIdx
