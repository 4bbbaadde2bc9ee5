// Package spec reads the textual specifications of gvmm's machine: the
// values of gvmm run's --gpio, --led, --key and --name, shared by the
// command and gvmmtest.
package spec
