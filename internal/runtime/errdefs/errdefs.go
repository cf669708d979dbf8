// Package errdefs holds the few error classes the runtime's packages return and the one place
// where they become gRPC status codes. Packages wrap a class with context
// (fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)); only the CRI edge calls ToGRPC.
package errdefs

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrNotFound: the named image, sandbox or container does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument: the request itself is wrong (bad reference, missing field).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAlreadyExists: a name or id is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the object is in the wrong state for the call.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnavailable: a dependency (registry, CNI plugin) could not be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthenticated: the registry refused the credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrUnimplemented: a CRI call this runtime does not serve (yet).
	ErrUnimplemented = errors.New("unimplemented")
	// ErrPermissionDenied: the kernel or runc refused an operation the request asked for.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrResourceExhausted: memory, pids or another limit ran out.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrDataLoss: content did not match its digest or could not be unpacked.
	ErrDataLoss = errors.New("corrupt content")
)

// ToGRPC maps err to a gRPC status error whose message is err's full text.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isClass(err) {
		return err
	}
	return status.Error(Code(err), err.Error())
}

func isClass(err error) bool { return Code(err) != codes.Unknown }

// Code returns the gRPC code for err's class, codes.Unknown if it has none.
func Code(err error) codes.Code {
	switch {
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, ErrUnimplemented):
		return codes.Unimplemented
	case errors.Is(err, ErrPermissionDenied):
		return codes.PermissionDenied
	case errors.Is(err, ErrResourceExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, ErrDataLoss):
		return codes.DataLoss
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}
