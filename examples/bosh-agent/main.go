// Command bosh-agent is kubefoundry's BOSH agent as a process: it reads
// its settings, connects to the director's message bus and serves the
// director's methods until SIGINT or SIGTERM, when it stops its jobs and
// exits.
//
//	bosh-agent -settings /var/vcap/bosh/settings.json [-root /var/vcap]
//	bosh-agent -guestinfo                              # on a vSphere VM
//
// -guestinfo reads guestinfo.bosh.settings (and its .encoding) with
// vmware-rpctool, as the vSphere CPI writes them. Logs go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bosh-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bosh-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settingsPath := fs.String("settings", "", "the agent's settings, a JSON file")
	guestinfo := fs.Bool("guestinfo", false, "read the settings from guestinfo.bosh.settings with vmware-rpctool")
	root := fs.String("root", agent.VCapRoot, "the directory that stands for /var/vcap")
	heartbeat := fs.Duration("heartbeat", 30*time.Second, "how often to publish a heartbeat")
	if err := fs.Parse(args); err != nil {
		return err
	}
	settings, err := loadSettings(ctx, *settingsPath, *guestinfo)
	if err != nil {
		return err
	}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(stderr), zap.InfoLevel))
	defer func() { _ = log.Sync() }()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a, err := agent.Start(startCtx, agent.Config{Settings: settings, Root: *root, HeartbeatInterval: *heartbeat}, agent.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("agent serving", zap.String("agent_id", settings.AgentID), zap.String("root", *root))
	<-ctx.Done()
	log.Info("stopping: leaving the bus and stopping the jobs")
	a.Close()
	return nil
}

func loadSettings(ctx context.Context, path string, guestinfo bool) (cpi.AgentSettings, error) {
	switch {
	case path != "" && guestinfo:
		return cpi.AgentSettings{}, errors.New("-settings and -guestinfo: give one")
	case path != "":
		return agent.LoadSettings(path)
	case guestinfo:
		value, err := rpctool(ctx, "guestinfo.bosh.settings")
		if err != nil {
			return cpi.AgentSettings{}, err
		}
		enc, _ := rpctool(ctx, "guestinfo.bosh.settings.encoding") // absent: plain JSON
		return agent.DecodeGuestinfoSettings(value, enc)
	}
	return cpi.AgentSettings{}, errors.New("-settings or -guestinfo is required")
}

func rpctool(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vmware-rpctool", "info-get "+key).Output()
	if err != nil {
		return "", fmt.Errorf("vmware-rpctool info-get %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}
