package testimage

import (
	"net/http"
	"runtime"
	"sync"
	"testing"
)

// Retired threads must not take the registry with them: Pdeathsig is per thread, and
// goroutines that end locked (as the runtime's namespace code does) retire theirs.
func TestRegistrySurvivesRetiredThreads(t *testing.T) {
	addr := StartRegistry(t, "")
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
			}()
		}
		wg.Wait()
	}
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatalf("registry gone after threads were retired: %v", err)
	}
	resp.Body.Close()
}
