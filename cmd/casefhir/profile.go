package main

import (
	"os"
	"runtime/pprof"
)

// cpuProfile writes a CPU profile of the process to path until the
// returned stop is called (on a clean shutdown). It is for measuring the
// server under a benchmark's load; an empty path profiles nothing.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
