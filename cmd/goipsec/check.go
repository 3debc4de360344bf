package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/credentials"
)

// errCheckFailed makes `goipsec check` exit 1 after it printed its report.
var errCheckFailed = errors.New("configuration check failed")

func newCheckCommand() *cobra.Command {
	var path string
	var offline bool
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a configuration file without running it (like nginx -t)",
		Long: `check reads FILE as "goipsec run" would and reports every problem at once, each as
FILE:LINE: error|warning: text. Besides syntax and values it checks that each PSK connection has
a secret that can match its identities, that files the configuration names can be written or
read, that credential files load (those in the swanctl folders next to FILE: x509/, x509ca/,
pubkey/, private/, ...; and those that certs, cacerts, pubkeys, authorities and key secrets
name, reported at the setting's line) and local certificates have their private keys, that
local_addrs exist on this host and that remote host names resolve (--offline skips the last
two). It exits 0 when there are no errors (warnings allowed), 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := checkEnv{resolve: net.DefaultResolver.LookupNetIP, localAddrs: hostAddrs}
			if offline {
				env = checkEnv{}
			}
			if n := checkConfig(cmd.Context(), cmd.OutOrStdout(), path, env); n > 0 {
				return errCheckFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/goipsec/goipsec.conf", "configuration file")
	cmd.Flags().BoolVar(&offline, "offline", false, "skip the checks that look at this host (addresses) and DNS")
	return cmd
}

// checkEnv is what the host-dependent checks look at; nil functions skip them.
type checkEnv struct {
	resolve    func(ctx context.Context, network, host string) ([]netip.Addr, error)
	localAddrs func() ([]netip.Addr, error)
}

func hostAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

type finding struct {
	file  string
	line  int
	level string // error or warning
	msg   string
}

func (f finding) String() string {
	if f.line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", f.file, f.line, f.level, f.msg)
	}
	return fmt.Sprintf("%s: %s: %s", f.file, f.level, f.msg)
}

// checkConfig prints the report and returns the number of errors.
func checkConfig(ctx context.Context, w io.Writer, path string, env checkEnv) int {
	var out []finding
	cfg, err := config.Load(path)
	if err != nil {
		var list config.ErrorList
		var one *config.Error
		switch {
		case errors.As(err, &list):
			for _, e := range list {
				out = append(out, finding{e.File, e.Line, "error", e.Msg})
			}
		case errors.As(err, &one):
			out = append(out, finding{one.File, one.Line, "error", one.Msg})
		default:
			out = append(out, finding{path, 0, "error", err.Error()})
		}
	} else {
		out = append(out, semanticChecks(ctx, cfg, path, env)...)
	}
	errs, warns := 0, 0
	for _, f := range out {
		fmt.Fprintln(w, f)
		if f.level == "error" {
			errs++
		} else {
			warns++
		}
	}
	switch {
	case errs > 0:
		fmt.Fprintf(w, "%s: test failed: %s, %s\n", path, plural(errs, "error"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(w, "%s: test is successful, with %s\n", path, plural(warns, "warning"))
	default:
		fmt.Fprintf(w, "%s: syntax is ok, test is successful (%s, %s)\n", path, plural(len(cfg.Connections), "connection"), plural(len(cfg.Manual), "manual SA"))
	}
	return errs
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// semanticChecks look past the file: secrets for the identities, files, this host's addresses.
func semanticChecks(ctx context.Context, cfg *config.Config, path string, env checkEnv) []finding {
	var out []finding
	secrets := indexSecrets(cfg)
	var mine []netip.Addr
	var mineErr error
	if env.localAddrs != nil {
		mine, mineErr = env.localAddrs()
	}
	for _, c := range cfg.Connections {
		if c.Local.Method == config.AuthPSK || c.Remote.Method == config.AuthPSK {
			if f, ok := pskFinding(secrets, c); !ok {
				out = append(out, f)
			}
		}
		starts := false
		for _, ch := range c.Children {
			starts = starts || ch.StartAction == config.ActionStart
		}
		if starts && c.DPDDelay == 0 {
			out = append(out, finding{c.File, c.Line, "warning", fmt.Sprintf("connections.%s starts itself but has no dpd_delay: "+
				"if the peer dies the tunnel stays \"up\" while every packet is lost; set dpd_delay = 30s", c.Name)})
		}
		for _, a := range c.LocalAddrs {
			if a.Kind == config.AddrSingle && env.localAddrs != nil {
				if mineErr == nil && !containsAddr(mine, a.Start) {
					out = append(out, finding{c.File, c.Line, "warning", fmt.Sprintf("connections.%s.local_addrs: %s is not an address of this host (yet)", c.Name, a.Start)})
				}
			}
		}
		for _, a := range c.RemoteAddrs {
			if a.Kind == config.AddrHost && env.resolve != nil {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_, err := env.resolve(rctx, "ip", a.Host)
				cancel()
				if err != nil {
					out = append(out, finding{c.File, c.Line, "warning", fmt.Sprintf("connections.%s.remote_addrs: %s does not resolve now: %v", c.Name, a.Host, err)})
				}
			}
		}
	}
	out = append(out, credentialChecks(cfg)...)
	if kl := cfg.Daemon.Log.KeylogFile; kl != "" {
		if st, err := os.Stat(filepath.Dir(kl)); err != nil || !st.IsDir() {
			out = append(out, finding{path, 0, "error", fmt.Sprintf("daemon.log.keylog_file: the directory of %s does not exist", kl)})
		}
	}
	if sock := cfg.Daemon.VICISocket; sock != "" {
		if err := socketFree(sock); err != nil {
			out = append(out, finding{path, 0, "warning", err.Error()})
		}
	}
	return out
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a.Unmap() {
			return true
		}
	}
	return false
}

// secretIndex is what pskFinding needs of the IKE secrets: whether any exists, whether one serves
// every identity, and the identities they name (lower case) — built once, so that checking a
// configuration with many connections and secrets stays linear.
type secretIndex struct {
	any, unbound bool
	ids          map[string]bool
}

func indexSecrets(cfg *config.Config) secretIndex {
	x := secretIndex{any: len(cfg.Secrets.IKE) > 0, ids: map[string]bool{}}
	for _, s := range cfg.Secrets.IKE {
		if len(s.IDs) == 0 {
			x.unbound = true
		}
		for _, id := range s.IDs {
			x.ids[strings.ToLower(id.Text)] = true
		}
	}
	return x
}

// pskFinding checks that some secret can serve the connection: one without identities, or one
// naming our or the peer's identity (the daemon prefers the most specific, see daemon's
// lookupPSK).
func pskFinding(secrets secretIndex, c *config.Connection) (finding, bool) {
	if !secrets.any {
		return finding{c.File, c.Line, "error", fmt.Sprintf("connections.%s uses auth = psk but secrets { } has no ike secret: IKE_AUTH will fail", c.Name)}, false
	}
	names := []string{idText(c.Local.ID, c.LocalAddrs), idText(c.Remote.ID, c.RemoteAddrs)}
	if secrets.unbound {
		return finding{}, true
	}
	for _, n := range names {
		if n != "" && secrets.ids[strings.ToLower(n)] {
			return finding{}, true
		}
	}
	return finding{c.File, c.Line, "error", fmt.Sprintf("connections.%s: no ike secret names %s or %s in its id-* keys (and none is for any identity): IKE_AUTH will fail",
		c.Name, orDefault(names[0], "our identity"), orDefault(names[1], "the peer's identity"))}, false
}

// idText is the identity's text, or the single address it defaults to.
func idText(id config.Identity, addrs []config.Address) string {
	if id.Text != "" && !id.IsAny() {
		return id.Text
	}
	if len(addrs) == 1 && addrs[0].Kind == config.AddrSingle {
		return addrs[0].Start.String()
	}
	return ""
}

// credentialChecks loads the credentials as the daemon does: the swanctl folders next to the
// main configuration file, and the files that settings name. A named file that is missing or does
// not parse is an error at the setting's line (the daemon refuses the connection or authority);
// a bad file in a folder is an error naming that file (the daemon skips it and loads the rest). A
// local certificate or raw key without its private key is a warning: the key may still come over
// VICI.
func credentialChecks(cfg *config.Config) []finding {
	if len(cfg.Files) == 0 {
		return nil
	}
	dir := filepath.Dir(cfg.Files[0])
	st := credentials.New(credentials.Options{})
	_, folderErrs := st.LoadDir(dir, cfg.Secrets.Passphrase)
	var out []finding
	named := map[string]bool{}
	resolve := func(r config.CredentialRef) string {
		if filepath.IsAbs(r.Name) {
			return filepath.Clean(r.Name)
		}
		return filepath.Join(dir, r.Folder, r.Name)
	}
	for _, r := range cfg.CredentialRefs() {
		path := resolve(r)
		named[path] = true
		if err := credentials.CheckFile(r.Folder, path, r.Name, cfg.Secrets.Passphrase(r.Folder, r.Name)); err != nil {
			out = append(out, finding{r.File, r.Line, "error", fmt.Sprintf("%s = %s: %s: %s", r.Setting, r.Name, path, fileProblem(err))})
		}
	}
	for _, e := range folderErrs {
		var fe *credentials.FileError
		if !errors.As(e, &fe) {
			out = append(out, finding{dir, 0, "error", e.Error()})
			continue
		}
		if !named[filepath.Clean(fe.Path)] {
			out = append(out, finding{fe.Path, 0, "error", fileProblem(fe.Err) + " (goipsec skips this file and loads the others)"})
		}
	}
	for _, c := range cfg.Connections {
		if c.Local.Method != config.AuthPubkey {
			continue
		}
		for _, r := range c.Local.Refs {
			var pub crypto.PublicKey
			switch r.Folder {
			case "x509":
				if cs, err := credentials.LoadCertFile(resolve(r)); err == nil {
					pub = cs[0].PublicKey
				}
			case "pubkey":
				if data, err := credentials.ReadFile(resolve(r)); err == nil {
					pub, _, _ = credentials.ParsePublicKey(data)
				}
			}
			if pub == nil {
				continue // reported above
			}
			if _, ok := st.PrivateKeyFor(pub); !ok {
				out = append(out, finding{r.File, r.Line, "warning", fmt.Sprintf("%s = %s: no private key for it in private/, rsa/, ecdsa/, pkcs8/ or pkcs12/ next to %s: "+
					"IKE_AUTH will fail unless one is loaded over VICI (swanctl --load-creds)", r.Setting, r.Name, cfg.Files[0])})
			}
		}
	}
	return out
}

// fileProblem says what is wrong with a credential file, without repeating its path.
func fileProblem(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.As(err, &pe):
		return pe.Err.Error()
	}
	return err.Error()
}
