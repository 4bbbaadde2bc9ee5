// Package vhostuser is the back-end side of the vhost-user protocol
// (QEMU's docs/interop/vhost-user.rst): it serves any virtio.Device to a
// front end such as QEMU over a Unix socket, so that the device runs in
// this process while the front end gives it to its guest. It knows
// nothing about any particular device; `gvmm gpio-backend` serves the
// virtio-gpio device with it.
//
// # What the front end does, and what the back end does with it
//
// The front end connects and negotiates: GET_FEATURES (the device's own
// bits, VIRTIO_F_VERSION_1, indirect descriptors, event idx and
// VHOST_USER_F_PROTOCOL_FEATURES), GET_ and SET_PROTOCOL_FEATURES (MQ,
// REPLY_ACK, CONFIG), GET_QUEUE_NUM, GET_CONFIG (Device.ReadConfig). When
// its guest's driver sets DRIVER_OK it sends SET_FEATURES, SET_MEM_TABLE
// (each region of guest RAM with a descriptor, which the back end maps
// MAP_SHARED into a vmm.Memory) and, for each queue, SET_VRING_NUM,
// SET_VRING_BASE, SET_VRING_ADDR (addresses in the front end's own
// address space, translated through the memory table to guest physical
// ones), SET_VRING_KICK and SET_VRING_CALL (eventfds), then
// SET_VRING_ENABLE (without VHOST_USER_F_PROTOCOL_FEATURES, SET_FEATURES
// enables every ring; a ring stays enabled or disabled while stopped).
// Once every ring it gave addresses is started (has its kick) and
// enabled, the back end calls Device.Activate with its copies of the
// queues (virtio.Queue), positioned at the base the front end gave; a
// goroutine per kick eventfd passes each kick to Device.Notify, and the
// device's Interrupt writes the call eventfds.
// GET_VRING_BASE stops the ring, and the device (Device.Reset) if it runs
// the ring, and answers where the ring stopped. A front end that hangs up has the device reset, its
// descriptors closed and its memory unmapped; the next one to connect is
// served the same device.
//
// # What the front end can make the back end hold
//
// Every message is read under fixed bounds (MaxPayload bytes, MaxFDs
// descriptors) before it is looked at; a message the back end refuses is
// answered with an error where the protocol has a way (a REPLY_ACK reply
// of 1 to NEED_REPLY, an empty GET_CONFIG reply), or ends the
// connection, and is logged in one line naming the request and the
// problem. Memory regions must be regular files (memfd, shared memory,
// hugetlbfs) large enough for what they map. A front end that shrinks a
// file afterwards makes the device's accesses past its new end fault
// (SIGBUS): each such access fails with an error (the device asks for a
// reset) instead of killing the process.
package vhostuser
