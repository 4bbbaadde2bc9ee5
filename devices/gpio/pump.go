package gpio

import "sync"

// pump feeds values to a channel in order without ever blocking the
// producer: push appends to an unbounded queue and a goroutine moves the
// queue into out. stop ends the goroutine and closes out; values still
// queued are dropped.
type pump[V any] struct {
	out  chan V
	wake chan struct{}
	done chan struct{}
	once sync.Once

	mu sync.Mutex
	q  []V
}

func newPump[V any]() *pump[V] {
	p := &pump[V]{
		out:  make(chan V),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go p.run()
	return p
}

// push queues v. It never blocks and is a no-op after stop.
func (p *pump[V]) push(v V) {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	p.q = append(p.q, v)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pump[V]) stop() { p.once.Do(func() { close(p.done) }) }

func (p *pump[V]) run() {
	defer close(p.out)
	for {
		p.mu.Lock()
		q := p.q
		p.q = nil
		p.mu.Unlock()
		for _, v := range q {
			select {
			case p.out <- v:
			case <-p.done:
				return
			}
		}
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
	}
}
