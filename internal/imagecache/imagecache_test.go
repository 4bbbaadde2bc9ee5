package imagecache

import "testing"

func TestDir(t *testing.T) {
	for _, tc := range []struct {
		cache, xdg, home, want string
	}{
		{"/c", "/x", "/h", "/c/image"},
		{"", "/x", "/h", "/x/gvmm/image"},
		{"", "", "/h", "/h/.cache/gvmm/image"},
	} {
		t.Setenv("GVMM_CACHE", tc.cache)
		t.Setenv("XDG_CACHE_HOME", tc.xdg)
		t.Setenv("HOME", tc.home)
		if got := Dir(); got != tc.want {
			t.Errorf("GVMM_CACHE=%q XDG_CACHE_HOME=%q HOME=%q: %q, want %q", tc.cache, tc.xdg, tc.home, got, tc.want)
		}
	}
}
