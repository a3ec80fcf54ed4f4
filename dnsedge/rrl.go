package dnsedge

import (
	"net/netip"
	"sync"
	"time"
)

// rrlAction is what response rate limiting decides for one response.
type rrlAction uint8

const (
	rrlAnswer rrlAction = iota // within the rate: send it
	rrlDrop                    // over the rate: send nothing
	rrlSlip                    // over the rate: send it truncated (TC, no records)
)

// Response rate limiting keys clients by network, since a spoofed flood
// spreads over the addresses of one: IPv4 /24 and IPv6 /56 (a common
// end-site assignment).
const (
	rrlBits4 = 24
	rrlBits6 = 56
	// rrlShards spreads the networks over independently locked maps.
	rrlShards = 64
	// rrlMaxPerShard bounds the networks tracked per shard. A flood from
	// more networks than that is spread so thin that each gets its burst
	// anyway; networks beyond the bound are answered without tracking.
	rrlMaxPerShard = 1 << 14
)

// rateLimiter is a token bucket per client network: each holds up to burst
// responses and refills at rate per second. Over the rate, every slip-th
// response is sent truncated, so that a real resolver behind a spoofed
// network retries over TCP (which is not limited), and the others are
// dropped. It limits the edge's use as a reflector; it is not a defence of
// the edge itself.
type rateLimiter struct {
	rate, burst float64
	slip        int // every slip-th limited response is slipped; <= 0 never
	// idle is how long a bucket takes to refill from empty; a bucket idle
	// that long is as good as absent, so sweeps drop it.
	idle   time.Duration
	shards [rrlShards]rrlShard
}

type rrlShard struct {
	mu      sync.Mutex
	buckets map[netip.Prefix]*rrlBucket
	swept   time.Time
}

type rrlBucket struct {
	tokens  float64
	last    time.Time
	limited uint64 // responses limited so far, for the slip count
}

// newRateLimiter limits to rate responses per second per network, with a
// burst of as many; nil when rate is not positive (RRLOff).
func newRateLimiter(rate, slip int) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	r := &rateLimiter{rate: float64(rate), burst: float64(rate), slip: slip}
	r.idle = time.Duration(r.burst / r.rate * float64(time.Second))
	for i := range r.shards {
		r.shards[i].buckets = map[netip.Prefix]*rrlBucket{}
	}
	return r
}

// rrlNetwork is the network addr is limited under.
func rrlNetwork(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := rrlBits4
	if addr.Is6() {
		bits = rrlBits6
	}
	p, _ := addr.Prefix(bits)
	return p
}

// check counts one response to addr at now and decides its fate.
func (r *rateLimiter) check(addr netip.Addr, now time.Time) rrlAction {
	net := rrlNetwork(addr)
	a := net.Addr().As16()
	h := uint32(2166136261) // FNV-1a over the network's bytes
	for _, c := range a {
		h ^= uint32(c)
		h *= 16777619
	}
	s := &r.shards[h%rrlShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[net]
	if !ok {
		if len(s.buckets) >= rrlMaxPerShard {
			s.sweep(now, r.idle)
		}
		if len(s.buckets) >= rrlMaxPerShard {
			return rrlAnswer
		}
		if now.Sub(s.swept) > 10*r.idle+time.Second {
			s.sweep(now, r.idle)
		}
		s.buckets[net] = &rrlBucket{tokens: r.burst - 1, last: now}
		return rrlAnswer
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(r.burst, b.tokens+elapsed.Seconds()*r.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return rrlAnswer
	}
	b.limited++
	if r.slip > 0 && b.limited%uint64(r.slip) == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// sweep drops the buckets idle long enough to be full again.
func (s *rrlShard) sweep(now time.Time, idle time.Duration) {
	s.swept = now
	for k, b := range s.buckets {
		if now.Sub(b.last) >= idle {
			delete(s.buckets, k)
		}
	}
}
