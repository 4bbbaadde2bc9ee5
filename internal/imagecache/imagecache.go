// Package imagecache says where images/build-image.sh keeps the project's
// guest image, for gvmm run's defaults and gvmmtest alike.
package imagecache

import (
	"os"
	"path/filepath"
)

// Dir is the directory of the newest guest image: $GVMM_CACHE/image, else
// $XDG_CACHE_HOME/gvmm/image, else ~/.cache/gvmm/image. It holds bzImage
// and initramfs.cpio.gz.
func Dir() string {
	if d := os.Getenv("GVMM_CACHE"); d != "" {
		return filepath.Join(d, "image")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gvmm", "image")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gvmm", "image")
}
