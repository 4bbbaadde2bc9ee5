package virtio

// The device status state machine, feature negotiation and queue
// configuration of the MMIO transport. Everything here runs with m.mu
// held.

// statusSteps are the valid device status values, without FAILED, in the
// order virtio 1.2 §3.1.1 has the driver set the bits.
var statusSteps = [...]uint32{
	0,
	StatusAcknowledge,
	StatusAcknowledge | StatusDriver,
	StatusAcknowledge | StatusDriver | StatusFeaturesOK,
	StatusAcknowledge | StatusDriver | StatusFeaturesOK | StatusDriverOK,
}

const statusDriverBits = StatusAcknowledge | StatusDriver | StatusFeaturesOK | StatusDriverOK | StatusFailed

// writeStatus handles a write to Status. 0 resets the device. Otherwise
// the value must keep every bit already set (the driver MUST NOT clear a
// bit) and reach a valid step of the initialization sequence, with or
// without FAILED; other writes are ignored. DEVICE_NEEDS_RESET in the
// value is ignored: Linux writes back what it read, ORed with a new bit.
// After FAILED only a reset is accepted.
func (m *MMIO) writeStatus(v uint32) {
	if v == 0 {
		m.reset()
		return
	}
	v &^= StatusDeviceNeedsReset
	cur := m.status
	switch {
	case v&^statusDriverBits != 0:
		m.Logf("virtio-mmio: status %#x: undefined bits; ignored", v)
		return
	case cur&StatusFailed != 0:
		if v != cur {
			m.Logf("virtio-mmio: status %#x after FAILED: reset first; ignored", v)
		}
		return
	case v&cur != cur:
		m.Logf("virtio-mmio: status %#x clears bits of %#x; ignored", v, cur)
		return
	case !validStep(v &^ StatusFailed):
		m.Logf("virtio-mmio: status %#x skips a step after %#x; ignored", v, cur)
		return
	}
	added := v &^ cur
	if added&StatusFeaturesOK != 0 && !m.negotiate() {
		// The driver reads Status back and sees no FEATURES_OK.
		v &^= StatusFeaturesOK | StatusDriverOK
	}
	m.status = v
	if added&StatusDriverOK != 0 && v&StatusDriverOK != 0 && v&StatusFailed == 0 {
		m.activate()
	}
}

func validStep(v uint32) bool {
	for _, s := range statusSteps {
		if v == s {
			return true
		}
	}
	return false
}

// writeDriverFeatures stores one word of the features the driver accepts.
// It is accepted only between DRIVER and FEATURES_OK.
func (m *MMIO) writeDriverFeatures(v uint32) {
	if m.status != StatusAcknowledge|StatusDriver {
		m.Logf("virtio-mmio: DriverFeatures written in status %#x; ignored", m.status)
		return
	}
	switch m.driverFeaturesSel {
	case 0:
		m.driverFeatures = m.driverFeatures&^0xffffffff | uint64(v)
	case 1:
		m.driverFeatures = m.driverFeatures&0xffffffff | uint64(v)<<32
	default:
		if v != 0 {
			m.driverFeaturesBad = true // no feature past 63 is offered
		}
	}
}

// negotiate decides FEATURES_OK: the driver may accept only offered
// features, and must accept VIRTIO_F_VERSION_1 (a version 2 device has
// no legacy interface).
func (m *MMIO) negotiate() bool {
	f := m.driverFeatures
	switch {
	case m.driverFeaturesBad:
		m.Logf("virtio-mmio: driver accepts feature bits past 63; FEATURES_OK refused")
	case f&^m.offered != 0:
		m.Logf("virtio-mmio: driver accepts features %#x not offered; FEATURES_OK refused", f&^m.offered)
	case f&(1<<FVersion1) == 0:
		m.Logf("virtio-mmio: driver does not accept VIRTIO_F_VERSION_1; FEATURES_OK refused")
	default:
		m.features = f
		return true
	}
	return false
}

// queueConfigurable reports whether the driver may configure queues now:
// after FEATURES_OK and before DRIVER_OK (Linux sets queues up in between,
// virtio 1.2 §3.1.1 step 7).
func (m *MMIO) queueConfigurable() bool {
	return m.status&(StatusFeaturesOK|StatusDriverOK|StatusFailed) == StatusFeaturesOK
}

// writeQueueConfig handles QueueNum and the ring address registers of the
// selected queue. They are writable only while the queue is not ready,
// and only in queueConfigurable.
func (m *MMIO) writeQueueConfig(off uint64, v uint32) {
	q := m.selected()
	if q == nil || q.Ready || !m.queueConfigurable() {
		m.Logf("virtio-mmio: queue register %#x written for queue %d in status %#x; ignored", off, m.queueSel, m.status)
		return
	}
	lo := func(a *uint64) { *a = *a&^0xffffffff | uint64(v) }
	hi := func(a *uint64) { *a = *a&0xffffffff | uint64(v)<<32 }
	switch off {
	case RegQueueNum:
		q.Size = 0 // invalid, refused by Validate
		if v <= 0xffff {
			q.Size = uint16(v)
		}
	case RegQueueDescLow:
		lo(&q.DescAddr)
	case RegQueueDescHigh:
		hi(&q.DescAddr)
	case RegQueueDriverLow:
		lo(&q.DriverAddr)
	case RegQueueDriverHigh:
		hi(&q.DriverAddr)
	case RegQueueDeviceLow:
		lo(&q.DeviceAddr)
	case RegQueueDeviceHigh:
		hi(&q.DeviceAddr)
	}
}

// writeQueueReady enables (1) or disables (0) the selected queue before
// DRIVER_OK. Enabling validates the queue; an invalid queue stays
// disabled and sets DEVICE_NEEDS_RESET, so that DRIVER_OK will not start
// the device with a queue missing.
func (m *MMIO) writeQueueReady(v uint32) {
	q := m.selected()
	if v == 0 && (q == nil || !q.Ready) {
		return // nothing to stop (Linux's del_vqs after a reset)
	}
	if q == nil || !m.queueConfigurable() || v > 1 {
		m.Logf("virtio-mmio: QueueReady %d for queue %d in status %#x; ignored", v, m.queueSel, m.status)
		return
	}
	if v == 0 {
		q.Ready = false
		return
	}
	if q.Ready {
		return
	}
	q.EventIdx = m.features&(1<<RingFEventIdx) != 0
	q.IndirectDesc = m.features&(1<<RingFIndirectDesc) != 0
	if err := q.Validate(m.mem); err != nil {
		m.Logf("virtio-mmio: queue %d: %v; DEVICE_NEEDS_RESET", m.queueSel, err)
		m.needsReset.Store(true)
		return
	}
	q.Ready = true
}

// activate starts the device at DRIVER_OK with copies of the enabled
// queues. On any error it sets DEVICE_NEEDS_RESET and, DRIVER_OK being
// set, sends a configuration change notification (virtio 1.2 §2.1.2).
func (m *MMIO) activate() {
	if m.needsReset.Load() {
		m.Logf("virtio-mmio: DRIVER_OK with DEVICE_NEEDS_RESET set; device not started")
		m.SetNeedsReset()
		return
	}
	queues := make([]*Queue, len(m.queues))
	for i := range m.queues {
		q := m.queues[i]
		if !q.Ready {
			continue
		}
		if err := q.Validate(m.mem); err != nil {
			m.Logf("virtio-mmio: DRIVER_OK: queue %d: %v; DEVICE_NEEDS_RESET", i, err)
			m.SetNeedsReset()
			return
		}
		queues[i] = &q
	}
	if err := m.dev.Activate(m.mem, m, queues, m.features); err != nil {
		m.Logf("virtio-mmio: activating device: %v; DEVICE_NEEDS_RESET", err)
		m.SetNeedsReset()
		return
	}
	m.active = true
}

// reset is a device reset (virtio 1.2 §2.4, §4.2.2.1): the device
// stops, then status, negotiation, queues and InterruptStatus return to
// their initial state.
func (m *MMIO) reset() {
	m.dev.Reset()
	m.active = false
	m.status = 0
	m.deviceFeaturesSel, m.driverFeaturesSel = 0, 0
	m.driverFeatures, m.driverFeaturesBad, m.features = 0, false, 0
	m.queueSel = 0
	for i := range m.queues {
		m.queues[i].Reset()
	}
	m.needsReset.Store(false)
	m.isr.Store(0)
}
