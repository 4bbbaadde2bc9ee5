module github.com/gvmm/gvmm

go 1.26.0

require (
	github.com/bobuhiro11/gokvm v0.0.8-0.20231003020000-f53faca69d28
	golang.org/x/sys v0.50.0
)
