package gvmmtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/gvmm/gvmm/internal/imagecache"
	"github.com/gvmm/gvmm/internal/ksyms"
)

// ImageDir is where the project's guest image is cached (images/
// build-image.sh): $GVMM_CACHE/image, else $XDG_CACHE_HOME/gvmm/image,
// else ~/.cache/gvmm/image.
func ImageDir() string { return imagecache.Dir() }

// buildOnce builds the default image at most once per test binary.
var buildOnce struct {
	sync.Mutex
	done bool
	err  error
}

// guestImage reads the kernel and initrd c asks for, building the
// project's image first if it is the default one and is missing.
func guestImage(logf func(string, ...any), c config) (kernel, initrd []byte, syms *ksyms.Table, err error) {
	kpath, ipath := c.kernel, c.initrd
	if kpath == "" {
		kpath = filepath.Join(ImageDir(), "bzImage")
		if ipath == "" {
			ipath = filepath.Join(ImageDir(), "initramfs.cpio.gz")
		}
		if _, err := os.Stat(kpath); errors.Is(err, os.ErrNotExist) {
			if err := buildImage(logf); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if kernel, err = os.ReadFile(kpath); err != nil {
		return nil, nil, nil, fmt.Errorf("kernel: %w", err)
	}
	if ipath != "" {
		if initrd, err = os.ReadFile(ipath); err != nil {
			return nil, nil, nil, fmt.Errorf("initrd: %w", err)
		}
	}
	// A System.map next to the kernel (build-image.sh keeps the image's)
	// names the guest's functions in the vCPU dump of a guest that hangs.
	if syms, err = ksyms.LoadBeside(kpath); err != nil {
		logf("gvmmtest: %v; the vCPU dumps will not name functions", err)
	}
	return kernel, initrd, syms, nil
}

// buildImage runs images/build-image.sh from the source tree this package
// was built from, logging its progress to the test.
func buildImage(logf func(string, ...any)) error {
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.done {
		return buildOnce.err
	}
	buildOnce.done = true
	_, src, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(src), "..", "images", "build-image.sh")
	if os.Getenv("GVMM_IN_L1") != "" {
		buildOnce.err = fmt.Errorf("no guest image in %s, and the nested test host cannot build one: run `make image` (or %s) on the host first", ImageDir(), script)
		return buildOnce.err
	}
	if _, err := os.Stat(script); err != nil {
		buildOnce.err = fmt.Errorf("no guest image in %s and no build script to make one (%v): run `make image` in gvmm's source tree", ImageDir(), err)
		return buildOnce.err
	}
	logf("gvmmtest: no guest image in %s: building it with %s (a few minutes the first time)", ImageDir(), script)
	cmd := exec.Command("bash", script)
	cmd.Stdout = io.Discard
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			logf("gvmmtest: %s", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	_ = pw.Close()
	if err != nil {
		buildOnce.err = fmt.Errorf("building the guest image (%s): %w; its log is in the cache directory", script, err)
	}
	return buildOnce.err
}
