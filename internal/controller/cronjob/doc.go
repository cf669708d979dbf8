// Package cronjob is the batch/v1 CronJob controller (kube-controller-manager's
// cronjob-controller).
//
// A CronJob's spec.schedule is parsed as Kubernetes parses it (robfig/cron's standard parser:
// five fields or @yearly/@monthly/@weekly/@daily/@hourly/@every), in spec.timeZone when set
// and otherwise in the controller's local zone; the API server validates with the same
// parser. planAt, free of I/O, picks the scheduled time to start a Job for: the latest unmet
// one since status.lastScheduleTime (or the CronJob's creation) that is no older than
// startingDeadlineSeconds; more than 100 missed times raise a TooManyMissedTimes warning, and
// only the latest runs.
//
// The Job for scheduled time T is named <cronjob>-<T in minutes since the epoch>, so that it
// can never be created twice; it is controlled by the CronJob and carries the
// batch.kubernetes.io/cronjob-scheduled-timestamp annotation. concurrencyPolicy Forbid skips
// a time while a Job is active, Replace deletes the active Jobs first. status.active,
// lastScheduleTime and lastSuccessfulTime follow the Jobs; finished Jobs beyond
// successfulJobsHistoryLimit and failedJobsHistoryLimit are deleted, oldest first. A suspended
// CronJob starts nothing.
//
// The controller never polls: after each sync it queues the CronJob again for its next
// schedule time (plus 100ms). Time comes from Config.Clock; NewScaledClock makes schedules run
// faster for demos and tests. New takes a Config and Run(ctx, workers) blocks until ctx is done.
package cronjob
