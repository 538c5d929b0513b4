// Command vsphere-cpi is kubefoundry's vSphere CPI as a BOSH CPI
// executable: it answers one CPI request read from stdin on stdout, as a
// CPI release's bin/cpi does, so a BOSH director (or bosh create-env) can
// use it, and so can package bosh/cpi's External.
//
//	vsphere-cpi -config cpi.json < request.json
//
// The config file is JSON: {"vcenter": <vsphere.Config>, "cpi":
// <vspherecpi.Config>}. Logs go to stderr (the director keeps them with
// the task); nothing but the response goes to stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// Config is the CPI's config file.
type Config struct {
	VCenter vsphere.Config    `json:"vcenter"`
	CPI     vspherecpi.Config `json:"cpi"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vsphere-cpi:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vsphere-cpi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the CPI's JSON config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	c, closeFn, err := connect(ctx, *path, stderr)
	if err != nil {
		// The director reads the answer on stdout whatever happened.
		return errors.Join(err, cpi.ServeError(stdin, stdout, err))
	}
	defer closeFn()
	return cpi.Serve(ctx, c, stdin, stdout)
}

func connect(ctx context.Context, path string, stderr io.Writer) (*vspherecpi.CPI, func(), error) {
	if path == "" {
		return nil, nil, errors.New("-config is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	// Logs to stderr only: stdout carries the response.
	enc := zap.NewDevelopmentEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(stderr), zap.InfoLevel))
	vs, err := vsphere.New(ctx, cfg.VCenter, vsphere.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	vols, err := csi.New(ctx, vs.Vim25(), csi.WithLogger(log))
	if err != nil {
		_ = vs.Close(ctx)
		return nil, nil, err
	}
	c, err := vspherecpi.New(vs, vols, cfg.CPI)
	if err != nil {
		_ = vs.Close(ctx)
		return nil, nil, err
	}
	return c, func() { _ = vs.Close(context.WithoutCancel(ctx)) }, nil
}
