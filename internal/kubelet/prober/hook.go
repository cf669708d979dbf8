package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"
)

// RunHook runs a postStart or preStop handler of container c until it finishes or ctx ends;
// the caller bounds ctx (the termination grace period for preStop). The error's message is
// the one the kubelet logs and records for FailedPostStartHook / FailedPreStopHook.
//
// As in the kubelet: an exec hook fails when the command cannot run or exits non-zero; an
// httpGet hook fails only when no response arrives (any status code counts as delivered); a
// sleep hook fails when ctx ends first; tcpSocket is not a supported hook and always fails
// (the API documents it as failing at runtime).
//
// The messages are the kubelet's word for word, capitals included, so that events and logs
// read as users know them.
func RunHook(ctx context.Context, ex Execer, h *v1.LifecycleHandler, pod *v1.Pod, c *v1.Container, podIP, containerID string) error {
	switch {
	case h.Exec != nil:
		stdout, stderr, err := ex.ExecSync(ctx, containerID, h.Exec.Command, 0)
		if err != nil {
			return fmt.Errorf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %w, message: %q",
				h.Exec.Command, c.Name, podDesc(pod), err, string(stdout)+string(stderr))
		}
		return nil
	case h.HTTPGet != nil:
		if err := runHTTPHook(ctx, h.HTTPGet, c, podIP); err != nil {
			return fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %w",
				h.HTTPGet.Path, c.Name, podDesc(pod), err)
		}
		return nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %w",
				h.Sleep.Seconds, c.Name, podDesc(pod), errors.New("container terminated before sleep hook finished"))
		}
	}
	return fmt.Errorf("Cannot run handler: invalid handler: %v", h)
}

func runHTTPHook(ctx context.Context, a *v1.HTTPGetAction, c *v1.Container, podIP string) error {
	if a.Host == "" && podIP == "" {
		return errors.New("failed to find networking container: the pod has no IP")
	}
	req, err := newHTTPRequest(ctx, a, c, podIP, "lifecycle")
	if err != nil {
		return err
	}
	res, err := newHTTPClient(0).Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxOutput))
	_ = res.Body.Close()
	return nil
}
