package vhostuser

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// prepareEventFD checks a descriptor received for a ring's kick, call or
// error and makes it non-blocking. It must be pollable, as an eventfd or
// a pipe is: a kick is read by a goroutine that closing the descriptor
// must be able to stop, and a regular file or a device would read forever
// or never. Non-blocking is the descriptor's file status, shared with the
// front end; QEMU creates its eventfds non-blocking anyway.
func prepareEventFD(fd int) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %v", err)
	}
	defer unix.Close(ep)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("%w: descriptor is not an eventfd or pipe (epoll: %v)", ErrFDs, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("setting O_NONBLOCK: %v", err)
	}
	return nil
}
