module github.com/gvmm/gvmm

go 1.26.0

require (
	github.com/alecthomas/kong v0.8.0 // indirect
	github.com/bobuhiro11/gokvm v0.0.8-0.20231003020000-f53faca69d28 // indirect
	golang.org/x/arch v0.2.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
