package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one measured run.
type sample struct {
	ops  int
	wall time.Duration
	cpu  time.Duration   // process CPU (user+system) during the run
	lat  []time.Duration // per operation
	// store work seen by the server's /metrics during the run (HTTP runs).
	storeSec, storeCalls float64
}

func (s sample) rate() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.ops) / s.wall.Seconds()
}

func (s sample) cpuPerOp() time.Duration {
	if s.ops == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.ops)
}

func (s sample) meanLat() time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range s.lat {
		t += d
	}
	return t / time.Duration(len(s.lat))
}

// runLoad runs op for i = 0..n-1 on conc workers, stopping early at
// maxDur or the first error. At least one operation is always attempted.
func runLoad(ctx context.Context, n, conc int, maxDur time.Duration, op func(ctx context.Context, i int) error) (sample, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	lats := make([][]time.Duration, conc)
	deadline := time.Now().Add(maxDur)
	cpu0 := cpuTime()
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || (i > 0 && time.Now().After(deadline)) {
					return
				}
				s := time.Now()
				err := op(ctx, i)
				lats[w] = append(lats[w], time.Since(s))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	smp := sample{wall: time.Since(t0), cpu: cpuTime() - cpu0}
	for _, l := range lats {
		smp.lat = append(smp.lat, l...)
	}
	smp.ops = len(smp.lat)
	return smp, firstErr
}

// arm is one side of a comparison.
type arm struct {
	name string
	run  func(ctx context.Context, round int) (sample, error)
}

// interleave runs the arms rounds times, in order on even rounds and in
// reverse on odd ones (A B, B A, ...), and returns the samples by arm.
func interleave(ctx context.Context, rounds int, arms ...arm) (map[string][]sample, error) {
	out := map[string][]sample{}
	for r := 0; r < rounds; r++ {
		order := slices.Clone(arms)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, a := range order {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			s, err := a.run(ctx, r)
			if err != nil {
				return out, err
			}
			out[a.name] = append(out[a.name], s)
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// med is the median over samples of f.
func med(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return median(xs)
}

// latMedian is the median of all per-operation latencies of ss.
// cpuPer is the process CPU per operation over the samples.
func cpuPer(ss []sample) time.Duration {
	var cpu time.Duration
	ops := 0
	for _, s := range ss {
		cpu += s.cpu
		ops += s.ops
	}
	if ops == 0 {
		return 0
	}
	return cpu / time.Duration(ops)
}

func latMedian(ss []sample) time.Duration {
	var xs []float64
	for _, s := range ss {
		for _, d := range s.lat {
			xs = append(xs, float64(d))
		}
	}
	return time.Duration(median(xs))
}
