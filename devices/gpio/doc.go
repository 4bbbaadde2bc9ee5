// Package gpio is the virtio-gpio device (virtio 1.2, section "GPIO
// Device", device ID 41): the protocol core (Controller), the Backend
// interface it drives, a simulated backend (Sim), and the glue that serves
// the Controller over a requestq and an eventq (Device). The split follows
// rust-vmm's vhost-device-gpio (gpio.rs: protocol logic, no queues), with
// the interrupt state machine in the core as well, so it is tested without
// queues or threads.
//
// The ground truth is the spec text and the Linux driver,
// drivers/gpio/gpio-virtio.c with include/uapi/linux/virtio_gpio.h. The
// older 2021 draft protocol (a different config layout and message set) is
// not implemented.
//
// # Files
//
//   - proto.go: the spec's constants, struct virtio_gpio_config and struct
//     virtio_gpio_request encodings.
//   - backend.go: Backend and Event, and how a GPIO character device (v2
//     uAPI) backend maps onto them.
//   - device.go: Controller, configuration space, the requestq.
//   - irq.go: the eventq and the interrupt state machine.
//   - stats.go: what the Controller counts, and how the counts reconcile.
//   - virtio.go: Device, the Controller over virtqueues (virtio.Device).
//   - sim.go, simwatch.go, simmodel.go: Sim, the wire model of its lines,
//     its Watch stream, and the Models attached to its lines.
//   - queue.go: the bounded queue behind Sim's Events and watchers, and
//     EdgeQueue, which the host-passthrough backend uses too.
//
// # What a guest or a client can make the device hold
//
// Nothing the driver or a control client does grows memory without bound.
// Per line: the Controller keeps 64 bytes (lineState, with a held eventq
// buffer kept as its head and its one response buffer, whatever chain the
// driver built: TestHeldBufferCost); a Sim 32 bytes (its state and the
// name's header) plus the name; an EdgeQueue, only while it folds, the
// line's four newest events, about 200 bytes with its map entry. Per bank:
// the names block (the names' bytes plus one per line), the EdgeQueue's
// EdgeQueueLimit events of 40 bytes (160 KiB), and for each watcher up to
// WatchLimit changes of 64 bytes (1 MiB; the control socket serves at
// most 32 clients). So the worst case for a bank of 65535 lines is about
// 6.1 MiB for its lines, 13 MiB more while its event queue folds every
// line at once, 160 KiB of queued events and 1 MiB per watcher: about
// 150 MiB for the 8 banks gvmm allows, before watchers; the control
// socket's list answer for all of them, some 70 MiB, is built for one
// client at a time and dropped if it is not read within 10 s. A popped
// chain lives only while its request is handled and holds at most the
// queue size (256) buffers. Models (Sim.Attach) are the host's, not the
// guest's: what they hold is theirs; the bank delivers them at most
// MaxCascade changes per call, and queues at most that many times the
// model pins on one line.
//
// # Configuration space
//
// struct virtio_gpio_config is {le16 ngpio; u8 padding[2]; le32
// gpio_names_size}. ngpio is Backend.Lines (1 to 65535: the driver refuses
// 0). gpio_names_size is the size of the names block, or 0 if no line has a
// name, in which case GET_NAMES is not supported and answered ERR.
//
// # requestq
//
// A message is struct virtio_gpio_request {le16 type; le16 gpio; le32
// value}, exactly 8 bytes; the response is struct virtio_gpio_response {u8
// status; u8 value}, or {u8 status; u8 value[gpio_names_size]} for
// GET_NAMES. _virtio_gpio_req() waits for the response without a timeout,
// then checks the status and, only if it is OK, that the used length
// equals the buffer size it allocated. Hence HandleRequest always answers,
// with exactly min(respCap, ResponseSize(req)) bytes; an ERR response has a
// zero value byte. A response buffer smaller than the message needs gets
// as much of an ERR response as fits, and the request is not executed: the
// driver sees the ERR before it looks at the length.
//
//   - GET_NAMES (type 1): every line's name followed by a NUL, in line
//     order; an unnamed line is a lone NUL. This is the layout
//     virtio_gpio_get_names() walks, and the spec's example. Names are
//     checked to be 7-bit ASCII without NUL and unique.
//   - GET_DIRECTION (2): Backend.Direction: 0 none, 1 out, 2 in. The
//     driver asks for every line when it registers the chip
//     (gpiochip_add_data) and again when a line is requested.
//   - SET_DIRECTION (3): value 0, 1 or 2. OUT drives the value kept from
//     the last SET_VALUE ("this output value must be used by the device"),
//     or 0 if there was none; virtio_gpio_direction_output() always sends
//     SET_VALUE first. NONE, which virtio_gpio_free() sends, discards the
//     line's state ("MUST discard all state information"): its interrupt is
//     disabled as by SET_IRQ_TYPE(NONE), its held eventq buffer returned
//     INVALID, its latch and kept value dropped, and the backend releases
//     the line.
//   - GET_VALUE (4): Backend.Get.
//   - SET_VALUE (5): value 0 or 1. Kept by the device; passed to
//     Backend.Set at once only if the line is an output.
//   - SET_IRQ_TYPE (6): only with VIRTIO_GPIO_F_IRQ negotiated; value one
//     of the six VIRTIO_GPIO_IRQ_TYPE_* values (0, 1, 2, 3, 4, 8).
//
// Every other type, a gpio >= ngpio, a value outside its range (the whole
// le32 is checked, nothing is truncated) and any Backend error give ERR.
// Fields the spec sets to 0 (gpio and value of GET_NAMES, value of the GET
// messages) are ignored. Requests execute in the order HandleRequest is
// called; the glue calls it in ring order, which gives "MUST process
// multiple messages, for the same GPIO line, sequentially".
//
// # Interrupts
//
// The spec splits an interrupt's state in two. It is enabled at the
// device by SET_IRQ_TYPE with a type other than NONE, and disabled by
// NONE. It is unmasked while the driver has an eventq buffer, struct
// virtio_gpio_irq_request {le16 gpio} plus struct virtio_gpio_irq_response
// {u8 status}, queued for the line, and masked again when the device
// returns that buffer. Per line the Controller keeps the trigger type, the
// held buffer (at most one), one latch bit and the input level.
//
//   - QueueEvent (unmask): a buffer for a line that is unknown, malformed,
//     or already has a buffer comes back INVALID at once. If an edge is
//     latched, or a level interrupt's level is active, it comes back VALID
//     at once. Otherwise it is held, even while the line's interrupt is
//     disabled (see below); enabling a level type whose level is active
//     then completes it VALID.
//   - An edge (HandleEvent, from Backend.Events via Run): with an edge type
//     and a matching edge, the held buffer completes VALID; without a held
//     buffer the edge is latched ("MUST latch an edge interrupt if the
//     interrupt is enabled but still masked"). The latch is a bit: further
//     edges before the next buffer collapse into it.
//   - A level type is never latched ("MUST NOT latch an level interrupt");
//     the held buffer completes VALID when the level becomes active, and a
//     buffer queued while it is active completes at once, so the interrupt
//     fires again after each requeue until the source is acknowledged, as
//     the eventq message flow describes.
//   - SET_IRQ_TYPE(NONE) returns the held buffer INVALID ("MUST return the
//     buffers, if they were received earlier") and drops the latch ("MUST
//     discard any latched interrupt"). The buffer goes to the complete
//     callback before HandleRequest returns, so the glue uses it before the
//     request's response.
//
// This matches how gpio-virtio.c uses the eventq: request_irq() sends
// SET_IRQ_TYPE from virtio_gpio_irq_bus_sync_unlock() and then queues the
// buffer (virtio_gpio_irq_prepare); the flow handler is handle_level_irq(),
// which masks (no message), runs the handler and unmasks, and
// virtio_gpio_irq_unmask() requeues the buffer; disable_irq()/free_irq()
// send SET_IRQ_TYPE(NONE); ignore_irq() drops an INVALID buffer while the
// line is masked or disabled and requeues it otherwise. driver_test.go
// replays these paths against a model of the driver.
//
// Every Backend event is an edge (Value 1 rising, 0 falling); backends
// report both edges whatever the type, and the Controller filters them by
// the trigger type and tracks the level from them, for level types. The
// level is read from the backend when the interrupt is enabled. Events the
// backend saw before that enable (Event.Time earlier than the
// SET_IRQ_TYPE) are left over from an earlier enable and are dropped, so a
// disable discards what the backend had queued too; an edge after the
// enable counts even if the level read already shows it.
//
// Bursts: with E matching edges and B buffers queued during a burst, the
// driver gets D VALID completions, B-1 <= D <= min(E, B), and an edge after
// the last completion is still reported on the next buffer. burst_test.go
// checks both.
//
// # Decisions where the spec is open
//
//   - A buffer queued for a disabled line is held, as the eventq message
//     flow allows ("The driver can do this before enabling the interrupt
//     as well"), not returned INVALID at once as the SET_IRQ_TYPE section
//     says it "should" be (not device-normative). gpio-virtio.c requeues
//     every INVALID buffer of a line it believes enabled (ignore_irq), so
//     returning it would ping-pong the buffer forever, an interrupt each
//     way, whenever driver and device disagree: after a SET_IRQ_TYPE the
//     backend refused (the driver ignores the ERR and queues its buffer)
//     or a SET_DIRECTION(NONE) on a line with an interrupt (below). The
//     held buffer waits for an enable; SET_IRQ_TYPE(NONE) returns it.
//   - SET_IRQ_TYPE changing one enabled type to another, which the driver
//     "MUST" not do, is processed as the NONE-then-new-type sequence the
//     spec requires: the held buffer comes back INVALID, the latch is
//     dropped, the new type is enabled. gpio-virtio.c can send this from
//     irq_set_irq_type() on an enabled interrupt; ignore_irq() requeues
//     the INVALID buffer and the line goes on working. Setting the current
//     type again is a no-op.
//   - SET_IRQ_TYPE other than NONE on an output is ERR ("MUST NOT send IRQ
//     messages for a GPIO line configured for output"), and so is
//     SET_DIRECTION(OUT) on a line with an enabled interrupt (gpiolib
//     refuses that too), so an output never has an interrupt.
//   - SET_DIRECTION(NONE) disables the line's interrupt, as "all state
//     information" includes it. If the driver still has that interrupt
//     enabled (a line used only as an interrupt, then requested and freed
//     as a GPIO), ignore_irq() requeues the INVALID buffer and the device
//     holds it: the interrupt stays off until the driver sets its type
//     again. gpiolib's own teardown (free_irq before gpiod_put) never does
//     this; TestDriverFreeWhileIRQEnabled pins the behaviour.
//   - A second buffer for a line that already has one is returned INVALID
//     and the first stays held.
//   - If the backend fails to disable an interrupt, the device disables it
//     anyway and returns the held buffer (the MUST does not depend on the
//     backend), and answers ERR. A failed enable leaves it disabled.
//   - GET_NAMES without names is answered ERR with the generic 2-byte
//     response, like any unsupported message.
//   - An eventq buffer without a writable byte is returned INVALID at once;
//     the glue writes nothing into it.
//   - A driver that negotiates VIRTIO_GPIO_F_IRQ but does not enable the
//     eventq could never receive an interrupt; for it the feature counts
//     as not negotiated, so SET_IRQ_TYPE is answered ERR and no backend
//     events are produced for nobody to read.
package gpio
