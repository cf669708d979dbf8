package cronjob

import (
	"time"

	"k8s.io/utils/clock"
)

// NewScaledClock returns a clock that starts at the real time of the call and runs speed
// times as fast: at speed 60 an every-minute schedule fires every second. Its timers and
// tickers fire after the real time their scaled durations take, so a workqueue built on it
// wakes up at scaled times. It is for demos and tests of schedules (a manager's
// --cronjob-clock-speed); a cluster runs on the real clock.
func NewScaledClock(speed float64) clock.WithTicker {
	if speed <= 0 {
		speed = 1
	}
	return &scaledClock{origin: time.Now(), speed: speed}
}

type scaledClock struct {
	origin time.Time
	speed  float64
}

func (c *scaledClock) real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.speed) }

func (c *scaledClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.origin)) * c.speed))
}

func (c *scaledClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *scaledClock) After(d time.Duration) <-chan time.Time { return time.After(c.real(d)) }

func (c *scaledClock) NewTimer(d time.Duration) clock.Timer {
	return &scaledTimer{Timer: time.NewTimer(c.real(d)), c: c}
}

func (c *scaledClock) Sleep(d time.Duration) { time.Sleep(c.real(d)) }

func (c *scaledClock) Tick(d time.Duration) <-chan time.Time { return time.Tick(c.real(d)) }

func (c *scaledClock) NewTicker(d time.Duration) clock.Ticker {
	return scaledTicker{time.NewTicker(c.real(d))}
}

type scaledTimer struct {
	*time.Timer
	c *scaledClock
}

func (t *scaledTimer) C() <-chan time.Time { return t.Timer.C }

func (t *scaledTimer) Reset(d time.Duration) bool { return t.Timer.Reset(t.c.real(d)) }

type scaledTicker struct{ *time.Ticker }

func (t scaledTicker) C() <-chan time.Time { return t.Ticker.C }
