package virtio

// SetPositions moves the device's ring positions, as if it had already
// popped lastAvail chains and pushed nextUsed (and signalled for them),
// for tests of index wrap-around.
func (q *Queue) SetPositions(lastAvail, nextUsed uint16) {
	q.lastAvail, q.nextUsed, q.signalledUsed = lastAvail, nextUsed, nextUsed
}

// NeedEvent exports vring_need_event for tests.
var NeedEvent = needEvent
