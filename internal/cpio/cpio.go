// Package cpio writes cpio archives in the "newc" format that the Linux
// kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
// buffer-format.rst). The kernel unpacks archives that follow one another,
// so an archive written here can be appended to an existing initramfs to
// add files to it: tests use that to put test binaries into the guest.
package cpio

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
)

// Writer writes a newc archive to an io.Writer.
type Writer struct {
	w   io.Writer
	ino uint32
	n   int64 // bytes written, for padding
	err error
}

// NewWriter returns a Writer appending to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

// Append returns initrd followed by a new archive that add writes: the
// padding to the 4-byte boundary where the kernel looks for the next
// archive, then add's entries, then the trailer. initrd is not modified.
func Append(initrd []byte, add func(*Writer) error) ([]byte, error) {
	buf := bytes.NewBuffer(append(make([]byte, 0, len(initrd)+4), initrd...))
	for buf.Len()%4 != 0 {
		buf.WriteByte(0)
	}
	w := NewWriter(buf)
	if err := add(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Mode bits of a cpio entry (the st_mode file types).
const (
	TypeDir  = 0o040000
	TypeReg  = 0o100000
	TypeLink = 0o120000
)

// Dir adds a directory (mode is its permission bits).
func (w *Writer) Dir(name string, perm uint32) error {
	return w.entry(name, TypeDir|perm&0o7777, nil)
}

// File adds a regular file with the given permission bits and contents.
// Its parent directories must have been added or exist in the archive it
// is appended to.
func (w *Writer) File(name string, perm uint32, data []byte) error {
	return w.entry(name, TypeReg|perm&0o7777, data)
}

// Symlink adds a symbolic link name pointing to target.
func (w *Writer) Symlink(name, target string) error {
	return w.entry(name, TypeLink|0o777, []byte(target))
}

// Close writes the trailer entry. It does not close the underlying writer.
func (w *Writer) Close() error { return w.entry("TRAILER!!!", 0, nil) }

func (w *Writer) entry(name string, mode uint32, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if name != "TRAILER!!!" {
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" {
			return fmt.Errorf("cpio: empty name")
		}
	}
	nlink := 1
	if mode&0o170000 == TypeDir {
		nlink = 2
	}
	ino := w.ino
	if name == "TRAILER!!!" {
		ino = 0
	}
	w.ino++
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	w.write([]byte(hdr + name + "\x00"))
	w.pad()
	w.write(data)
	w.pad()
	return w.err
}

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.err = err
}

// pad aligns the output to 4 bytes, as newc requires after the name and
// after the data.
func (w *Writer) pad() {
	if r := w.n % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}
