package scheduler

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
)

// DefaultSchedulerName is the schedulerName of pods that name none.
const DefaultSchedulerName = "default-scheduler"

// Config configures a scheduler.
type Config struct {
	// SchedulerName selects the pods this scheduler handles (default "default-scheduler").
	SchedulerName string
	// LeaderElect runs the scheduler only while it holds the Lease LeaseNamespace/LeaseName.
	LeaderElect    bool
	LeaseNamespace string        // default kube-system
	LeaseName      string        // default kube-scheduler
	LeaseDuration  time.Duration // default 15s
	RenewDeadline  time.Duration // default 10s
	RetryPeriod    time.Duration // default 2s
	Identity       string        // default hostname_<uuid>
	// PercentageOfNodesToScore: 0 is adaptive (50% − nodes/125, at least 5%); 100 means all.
	PercentageOfNodesToScore int
	// Parallelism is the number of goroutines filtering and scoring (default GOMAXPROCS).
	Parallelism int
	// BindWorkers bounds the bindings in flight (default 64).
	BindWorkers int
	// InitialBackoff and MaxBackoff bound the retry delay of failed pods (default 1s, 10s).
	InitialBackoff, MaxBackoff time.Duration
	Log                        *slog.Logger
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.SchedulerName == "" {
		c.SchedulerName = DefaultSchedulerName
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = "kube-system"
	}
	if c.LeaseName == "" {
		c.LeaseName = "kube-scheduler"
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		errs = append(errs, fmt.Errorf("leader election: want lease duration (%v) > renew deadline (%v) > retry period (%v) > 0",
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod))
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		c.Identity = host + "_" + string(uuid.NewUUID())
	}
	if c.PercentageOfNodesToScore < 0 || c.PercentageOfNodesToScore > 100 {
		errs = append(errs, fmt.Errorf("percentageOfNodesToScore %d is out of range 0-100", c.PercentageOfNodesToScore))
	}
	if c.Parallelism < 0 {
		errs = append(errs, errors.New("parallelism must not be negative"))
	}
	if c.BindWorkers == 0 {
		c.BindWorkers = 64
	}
	if c.BindWorkers < 0 {
		errs = append(errs, errors.New("bind workers must be positive"))
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.InitialBackoff < 0 || c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("backoff: want 0 < initial (%v) <= max (%v)", c.InitialBackoff, c.MaxBackoff))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}
