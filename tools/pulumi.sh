#!/usr/bin/env bash
# Build the pinned Pulumi CLI and a Python language host from Go modules into the tool cache.
# Prints PULUMI_BIN_DIR=<dir> on stdout (logs on stderr); a no-op once that version is built.
#
# Why not the releases: only package registries are reachable (no get.pulumi.com, no GitHub).
# Why v3.260.0: it must equal the `pulumi` pin in requirements.txt, and the Go module proxy here
# serves pkg/v3 only at a few versions (..., 3.252.0, 3.260.0, 3.274.0, 3.274.1), of which 3.260.0
# is the newest that PyPI also has.
source "$(dirname "$0")/lib.sh"

PULUMI_VERSION=v3.260.0
# Bump this when the embedded language host below changes, so the cache is rebuilt.
HOST_REVISION=2

build_pulumi() {
  local out=$1 work gomod
  work=$(mktemp -d)

  # pkg/v3 replaces sdk/v3 with ../sdk, which only works inside the pulumi repo, so build from a
  # throwaway wrapper module that requires pkg/v3 and sdk/v3 at the same version and copies
  # pkg/v3's other (non-local) replace directives.
  gomod=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  (
    cd "$work"
    go mod init pulumi-build >/dev/null 2>&1
    go mod edit -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
      -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    # single-line and block replace directives, minus the local "=> ../" ones
    awk '/^replace \(/ {b=1; next} b && /^\)/ {b=0; next}
         b {print "replace " $0; next} /^replace / {print}' "$gomod" |
      grep -v '=> \.' >>go.mod || true
    write_language_host "$work/langhost"
    ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
    log "compiling pulumi $PULUMI_VERSION"
    go build -ldflags "$ldflags" -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    log "compiling pulumi-language-python"
    go build -ldflags "$ldflags" -o "$out/pulumi-language-python" ./langhost
  )

  # The Python side of the host ships inside the sdk/v3 module zip (read-only files there).
  local sdk
  sdk=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/"
  # Python dynamic providers (pulumi.dynamic) run through this script, as in the release archive.
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/"
  "$out/pulumi" version >&2
  rm -rf "$work"
}

# The real host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not
# served by the Go module proxy here at any version, so this is a minimal stand-in built on sdk/v3:
# it runs the real pulumi-language-python-exec with the project's Python (the `virtualenv` and
# `toolchain` runtime options are resolved by sdk/v3's python/toolchain, as the real host does).
# Not implemented (the CLI copes with "unimplemented"): plugin discovery from installed packages
# (providers must be on PATH), `pulumi install`/`new`, policy packs, codegen.
write_language_host() {
  mkdir -p "$1"
  cat >"$1/main.go" <<'EOF'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Exit code with which pulumi-language-python-exec says it already showed the error.
const userActionableExit = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string // engine address, the only argument the CLI passes
	exec   string // pulumi-language-python-exec, next to this binary
}

func main() {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	h := &host{exec: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")}
	if len(os.Args) > 1 {
		h.engine = os.Args[len(os.Args)-1]
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{Init: func(s *grpc.Server) error {
		pulumirpc.RegisterLanguageRuntimeServer(s, h)
		return nil
	}})
	if err != nil {
		fail(err)
	}
	fmt.Println(handle.Port) // the CLI reads the port from our first line of stdout
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pulumi-language-python:", err)
	os.Exit(1)
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *host) Handshake(context.Context, *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// No plugin discovery: providers are found on PATH as ambient plugins when first used.
func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Pip,
	}
	if o := info.GetOptions().AsMap(); o != nil {
		if v, ok := o["virtualenv"].(string); ok {
			opts.Virtualenv = v
		}
		switch o["toolchain"] {
		case "uv":
			opts.Toolchain = toolchain.Uv
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		}
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := []string{"-u", h.exec}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engine)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprint(req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	add("root_directory", info.GetRootDirectory())
	program := info.GetEntryPoint()
	if program == "" {
		program = "."
	}
	args = append(append(args, program), req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.GetProgramDirectory()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	// The exec script wants JSON objects/arrays here, never null.
	configMap, keys := req.GetConfig(), req.GetConfigSecretKeys()
	if configMap == nil {
		configMap = map[string]string{}
	}
	if keys == nil {
		keys = []string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr

	var exitErr *exec.ExitError
	switch err := cmd.Run(); {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == userActionableExit:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python program: %v", err)}, nil
	}
}
EOF
}

build_once pulumi "$PULUMI_VERSION-host$HOST_REVISION" build_pulumi
echo "PULUMI_BIN_DIR=$(tool_dir pulumi "$PULUMI_VERSION-host$HOST_REVISION")"
