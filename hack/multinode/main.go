// Command multinode runs a multi-node nanokube cluster on this machine for trying it out:
// one server and N agents, each node in its own network namespace on a private bridge with
// no route out (internal/multinode). It prints how to reach the cluster, runs until Ctrl-C,
// then tears everything down (processes, containers, mounts, cgroups, namespaces).
//
//	go run ./hack/multinode -bin bin/nanokube -agents 2 [-images DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nanokube/nanokube/internal/multinode"
)

func main() {
	bin := flag.String("bin", "bin/nanokube", "the nanokube binary")
	agents := flag.Int("agents", 2, "number of agent nodes besides the server's own")
	dir := flag.String("dir", "", "state directory (default: a new temporary directory)")
	images := flag.String("images", "", "directory of image archives (*.tar) to import on every node")
	name := flag.String("name", "nkmn", "prefix of the network namespaces (at most 8 characters)")
	flag.Parse()
	if err := run(*bin, *agents, *dir, *images, *name); err != nil {
		fmt.Fprintln(os.Stderr, "multinode:", err)
		os.Exit(1)
	}
}

func run(bin string, agents int, dir, images, name string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, containers)")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "nanokube-multinode-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("starting a server and %d agents in %s ...\n", agents, dir)
	c, err := multinode.Up(ctx, multinode.Config{Name: name, Bin: bin, Dir: dir, Agents: agents,
		Images: func(d string) error { return copyArchives(images, d) }})
	if c != nil {
		defer func() {
			fmt.Println("tearing down ...")
			if err := c.Down(); err != nil {
				fmt.Fprintln(os.Stderr, "multinode: tear down:", err)
			}
		}()
	}
	if err != nil {
		return err
	}
	fmt.Printf("\n%d nodes are ready (logs: %s/node-*.log). From the client namespace:\n\n", len(c.Nodes), dir)
	fmt.Printf("  nsenter --net=/var/run/netns/%s kubectl --kubeconfig %s get nodes -o wide\n\n", c.ClientNetns, c.Kubeconfig)
	fmt.Println("Ctrl-C stops the cluster and removes everything it made.")
	<-ctx.Done()
	return nil
}

func copyArchives(from, to string) error {
	if from == "" {
		return nil
	}
	archives, err := filepath.Glob(filepath.Join(from, "*.tar"))
	if err != nil {
		return err
	}
	for _, a := range archives {
		if err := copyFile(a, filepath.Join(to, filepath.Base(a))); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
