package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubelettypes "k8s.io/kubelet/pkg/types"
)

// restartCountAnnotation is the kubelet's annotation on each container instance.
const restartCountAnnotation = "io.kubernetes.container.restartCount"

// httpError is an error with the status code the kubelet answers it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError answers err as plain text: an httpError with its code, a CRI error with the code
// its gRPC status maps to, anything else with 500.
func writeError(w http.ResponseWriter, err error) {
	code, msg := http.StatusInternalServerError, err.Error()
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	} else if st, ok := status.FromError(err); ok {
		msg = st.Message()
		switch st.Code() {
		case codes.NotFound:
			code = http.StatusNotFound
		case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
			code = http.StatusBadRequest
		}
	}
	http.Error(w, msg, code)
}

// requestPod returns the pod named by the request's {ns}, {pod} and optional {uid}.
func (s *Server) requestPod(r *http.Request) (*v1.Pod, error) {
	ns, name, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid")
	pod, ok := s.host.Pod(ns, name)
	if !ok || (uid != "" && uid != string(pod.UID)) {
		return nil, errorf(http.StatusNotFound, "pod %q does not exist", name)
	}
	return pod, nil
}

// requestContainer returns the pod and the container name of the request, which the pod's
// spec must have.
func (s *Server) requestContainer(r *http.Request) (*v1.Pod, string, error) {
	pod, err := s.requestPod(r)
	if err != nil {
		return nil, "", err
	}
	name := r.PathValue("container")
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return pod, name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return pod, name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return pod, name, nil
		}
	}
	return nil, "", errorf(http.StatusNotFound, "container %q not found in pod %q", name, pod.Name)
}

// instances returns the pod's instances of container name, from every sandbox of the pod's
// UID, newest first.
func instances(ctx context.Context, rt internalapi.RuntimeService, pod *v1.Pod, name string) ([]*runtimeapi.Container, error) {
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		kubelettypes.KubernetesPodUIDLabel:        string(pod.UID),
		kubelettypes.KubernetesContainerNameLabel: name,
	}})
	if err != nil {
		return nil, err
	}
	restarts := func(c *runtimeapi.Container) int {
		n, _ := strconv.Atoi(c.GetAnnotations()[restartCountAnnotation])
		return n
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].CreatedAt != cs[j].CreatedAt {
			return cs[i].CreatedAt > cs[j].CreatedAt
		}
		return restarts(cs[i]) > restarts(cs[j])
	})
	return cs, nil
}

// readySandbox returns the newest ready sandbox of the pod's UID.
func readySandbox(ctx context.Context, rt internalapi.RuntimeService, pod *v1.Pod) (*runtimeapi.PodSandbox, error) {
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{kubelettypes.KubernetesPodUIDLabel: string(pod.UID)},
	})
	if err != nil {
		return nil, err
	}
	var newest *runtimeapi.PodSandbox
	for _, sb := range sbs {
		if newest == nil || sb.CreatedAt > newest.CreatedAt {
			newest = sb
		}
	}
	if newest == nil {
		return nil, errorf(http.StatusBadRequest, "pod %q is not running", pod.Name)
	}
	return newest, nil
}

// runningContainer returns the running instance of container name in the pod's ready sandbox.
func runningContainer(ctx context.Context, rt internalapi.RuntimeService, pod *v1.Pod, name string) (*runtimeapi.Container, error) {
	sb, err := readySandbox(ctx, rt, pod)
	if err != nil {
		return nil, err
	}
	cs, err := instances(ctx, rt, pod, name)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.PodSandboxId == sb.Id && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c, nil
		}
	}
	return nil, errorf(http.StatusBadRequest, "container %q in pod %q is not available", name, pod.Name)
}
