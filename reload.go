package mtls

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/certfile"
)

// Reloading. Everything the configuration reads from files is loaded by one function, load, into
// one state; New installs the first, Reload the next ones, and a request loads the state once
// (pipeline.go), so that it never mixes the trust of one load with the policy, the bindings or
// the deny list of another. A polling goroutine (Config.ReloadInterval) calls Reload when a file
// changes; another fetches RevocationConfig.DenyListURL. Outcomes go to the observer (observe.go)
// and to ReloadStatus.

// state is what a reload replaces at once: the trust, the outcomes verified under it, and what
// the other files configure.
type state struct {
	trust    *trust
	cache    *cache
	policy   Policy                      // Config.Policy and every PolicyFiles document; nil: none
	bindings map[*BindingStore]*Bindings // the bindings of Principals' stores
	deny     *DenyList                   // Revocation.DenyListFile's entries; nil: no file
	tiers    *tierMap                    // Throttle.Resolver's TierStore file; nil: none
	// routeFiles are the policy files of Require and Shadow by path, as loaded with this state; a
	// file registered since, or read by LoadPolicyFile since, judges as LoadPolicyFile read it
	// (routePolicy.in).
	routeFiles map[string]*filePolicy
	gen        uint64 // the state's number, one more than the previous one's (install)
	// refusals counts the refusals of clients under this trust (refusals.go); nil: not slowed.
	refusals *refusalTable
}

// fileConfig is what load reads besides the trust files (trustConfig).
type fileConfig struct {
	policyFiles []string
	stores      []*BindingStore
	denyFile    string
	interval    time.Duration // 0: no polling
}

// reloader is the run-time side of reloading: marks of the files, status, goroutines.
type reloader struct {
	mu     sync.Mutex          // serialises loads and swaps; guards marks
	marks  map[string]fileMark // what the files were when last looked at (polling only)
	status sync.Mutex          // guards files and url
	files  SourceStatus
	url    SourceStatus
	// routeFiles are the paths of the policy files that Require and Shadow registered, each once,
	// in order, at most maxRouteFiles; routeSet holds the same (both guarded by mu; load and
	// watched read them).
	routeFiles []string
	routeSet   map[string]struct{}
	gens       atomic.Uint64 // the generation of the last state installed

	ctx    context.Context // done once Close is called
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// load reads and checks every file of the configuration and returns the state they make, or
// every problem, each a *ConfigError naming its field. It changes nothing.
func (m *Middleware) load() (*state, error) {
	var p problems
	t, err := m.trustCfg.load()
	p.merge(err)
	st := &state{trust: t, policy: m.policies.policy}
	m.loadPolicies(&p, st)
	for _, s := range m.files.stores {
		b, err := loadBindings(s.path)
		if err != nil {
			p.add("Principals", err)
			continue
		}
		if st.bindings == nil {
			st.bindings = map[*BindingStore]*Bindings{}
		}
		st.bindings[s] = b
	}
	if th := m.throttle; th != nil && th.store != nil {
		t, err := loadTierFile(th.store.path)
		if err == nil {
			err = th.checkTiers(th.store.path, t)
		}
		p.add("Throttle.Resolver", err)
		st.tiers = t
	}
	if m.files.denyFile != "" {
		var had *DenyList // the list in force; nil in New
		if prev := m.state.Load(); prev != nil {
			had = prev.deny
		}
		st.deny = &DenyList{}
		p.add("Revocation.DenyListFile", st.deny.loadFile(m.files.denyFile, had.Len() == 0))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return st, nil
}

// loadPolicies reads the policy files of the configuration into st: Config.PolicyFiles beside
// Config.Policy, and the files of the routes' and calls' policies.
func (m *Middleware) loadPolicies(p *problems, st *state) {
	if len(m.files.policyFiles) > 0 {
		var ps []Policy
		if st.policy != nil {
			ps = append(ps, st.policy)
		}
		for i, f := range m.files.policyFiles {
			pol, err := LoadPolicyFile(f)
			if err != nil {
				p.add(fmt.Sprintf("PolicyFiles[%d]", i), err)
				continue
			}
			pol, _ = withClock(pol, m.now)
			ps = append(ps, pol)
		}
		st.policy = All(ps...)
	}
	if files := m.reload.routeFiles; len(files) > 0 {
		st.routeFiles = make(map[string]*filePolicy, len(files))
		for _, path := range files { // each once, however many policies hold it
			g, err := loadPolicyFile(path)
			p.add("route policy", err)
			if g != nil {
				st.routeFiles[path] = g
			}
		}
	}
}

// install puts st in force, with a new cache: the bindings into their stores first (st's
// requests resolve with st's own, see BindingStore.ResolvePrincipal), then the state.
func (m *Middleware) install(st *state) {
	st.cache = newCache(m.cacheSize, m.cacheBytes)
	st.refusals = m.refusalCfg.newTable() // a new trust judges every client afresh
	st.gen = m.reload.gens.Add(1)
	for s, b := range st.bindings {
		s.swap(b)
	}
	if st.tiers != nil {
		m.throttle.store.cur.Store(st.tiers)
	}
	m.state.Store(st)
}

// Reload reads every file of the configuration again: RootCAFiles, IntermediateFiles,
// PinnedSHA256Files, PolicyFiles, the [BindingStore]s of Principals,
// Revocation.DenyListFile, the [TierStore] of Throttle.Resolver, and the policy files ([LoadPolicyFile]) of the routes'
// [Middleware.Require] and [Middleware.Shadow]. Only if all of them are valid does it swap them
// in, at once: a request sees either everything of the previous load or everything of this one,
// never a mix. The swap forgets every cached outcome. If a file is not valid, everything in force
// stays, and the error says which (a [*ConfigError] naming the field, such as "RootCAFiles[1]",
// for each problem; "route policy" for a route's policy file, whose path the problem names). Either way the outcome goes to the logger (Error for a failure, Info for a success)
// and to [Middleware.ReloadStatus]. Call it on SIGHUP, or let [Config.ReloadInterval] call it
// when a file changes. It is safe for concurrent use; reloads run one at a time.
func (m *Middleware) Reload() error {
	m.reload.mu.Lock()
	defer m.reload.mu.Unlock()
	return m.reloadLocked()
}

// ReloadTrust is Reload, which it predates (it reads every file, not only the trust).
//
// Deprecated: use [Middleware.Reload].
func (m *Middleware) ReloadTrust() error { return m.Reload() }

func (m *Middleware) reloadLocked() error {
	if m.files.interval > 0 {
		m.reload.marks = m.scan() // before reading: a change made meanwhile is seen by the next poll
	}
	st, err := m.load()
	if err == nil {
		m.install(st)
		if m.revoc != nil {
			m.revoc.trustChanged() // CRL signers learnt under the old trust are trusted no more
		}
	}
	m.reportLoad(&m.reload.files, "files", err)
	return err
}

// start begins what runs in the background once New succeeded: polling and the deny list URL.
func (m *Middleware) start() {
	r := &m.reload
	now := m.now()
	r.status.Lock()
	r.files = SourceStatus{Sources: m.watched(), Generation: 1, LastAttempt: now, LastSuccess: now}
	r.status.Unlock()
	if m.files.interval > 0 { // r.marks were taken before New's load: a change since is seen
		m.every(m.files.interval, func() { m.poll() })
	}
	if m.revoc != nil && m.revoc.remote != nil && m.revoc.remoteEvery > 0 {
		m.every(m.revoc.remoteEvery, func() { _ = m.refreshDenyList(r.ctx) })
	}
}

// every runs f every d in a goroutine until Close.
func (m *Middleware) every(d time.Duration, f func()) {
	r := &m.reload
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f()
			case <-r.ctx.Done():
				return
			}
		}
	}()
}

// Close stops the goroutines of the middleware: the polling of [Config.ReloadInterval] and the
// fetches of [RevocationConfig.DenyListURL] (one under way is cancelled). It waits for them to
// end and returns nil. The middleware goes on serving with what it last loaded; Reload still
// works. Close may be called more than once.
func (m *Middleware) Close() error {
	m.reload.cancel()
	m.reload.wg.Wait()
	return nil
}

// poll is one step of polling: it reloads if a file changed since it was last looked at, and
// reports whether it did.
func (m *Middleware) poll() bool {
	r := &m.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	marks := m.scan()
	changed := !sameFiles(r.marks, marks)
	r.marks = marks
	if changed {
		_ = m.reloadLocked() // reported by reloadLocked
	}
	return changed
}

// fileMark is what polling knows of a file.
type fileMark struct {
	fi   os.FileInfo // nil: the file could not be read
	seen time.Time   // when it was hashed
	sum  [sha256.Size]byte
}

// maxWatchedFile bounds what polling hashes of one file: more than any file load accepts.
const maxWatchedFile = 64<<20 + 1

// racyWindow: a file modified less than this before it was hashed may change again without its
// modification time changing (coarse file system clocks), so it is hashed again at the next look.
const racyWindow = 2 * time.Second

// watched lists the files load reads (the directories of binding stores as themselves).
func (m *Middleware) watched() []string {
	list := m.configured()
	n := len(list)
	for _, path := range m.reload.routeFiles {
		if !slices.Contains(list[:n], path) {
			list = append(list, path)
		}
	}
	return list
}

// configured lists the files of the configuration, those that New knows of.
func (m *Middleware) configured() []string {
	tc := &m.trustCfg
	list := slices.Concat(tc.rootFiles, tc.intermediateFiles, tc.pinFiles, m.files.policyFiles)
	for _, s := range m.files.stores {
		list = append(list, s.path)
	}
	if m.files.denyFile != "" {
		list = append(list, m.files.denyFile)
	}
	if th := m.throttle; th != nil && th.store != nil {
		list = append(list, th.store.path)
	}
	return list
}

// maxRouteFiles bounds the distinct policy files that the routes of one middleware register for
// reloading: each is read by every reload and looked at by every poll.
const maxRouteFiles = 1024

// watchPolicyFiles registers the policy files of a route for reloading. Polling marks a new file
// as it was read, so that a change made since is seen by the next poll; a file already watched
// and read otherwise by LoadPolicyFile than it was marked makes the next poll reload.
// A path is registered once, however many policies read it; registering more than
// maxRouteFiles distinct paths panics, as a programming error (a Require built per request for
// a file of the request's choosing).
func (m *Middleware) watchPolicyFiles(files []*filePolicy) {
	r := &m.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	var added []string
	for _, f := range files {
		if _, ok := r.routeSet[f.path]; !ok {
			if len(r.routeFiles) >= maxRouteFiles {
				panic(fmt.Sprintf("mtls: more than %d policy files registered for reloading by Require and Shadow", maxRouteFiles))
			}
			if r.routeSet == nil {
				r.routeSet = map[string]struct{}{}
			}
			r.routeSet[f.path] = struct{}{}
			r.routeFiles = append(r.routeFiles, f.path)
			added = append(added, f.path)
		}
		if m.files.interval <= 0 {
			continue
		}
		if r.marks == nil {
			r.marks = map[string]fileMark{}
		}
		if old, ok := r.marks[f.path]; !ok {
			r.marks[f.path] = markRead(f)
		} else if old.fi == nil || old.sum != f.sum {
			delete(r.marks, f.path)
		}
	}
	if len(added) > 0 {
		conf := m.configured()
		r.status.Lock()
		for _, path := range added {
			if !slices.Contains(conf, path) {
				r.files.Sources = append(r.files.Sources, path)
			}
		}
		r.status.Unlock()
	}
}

// markRead is the mark of a policy file as LoadPolicyFile read it.
func markRead(f *filePolicy) fileMark {
	fi, err := os.Stat(f.path)
	if err != nil || !fi.Mode().IsRegular() {
		return fileMark{}
	}
	return fileMark{fi: fi, seen: f.read, sum: f.sum}
}

// scan looks at the watched files (and, in a binding store's directory, the files its loader
// reads) and returns their marks. A file is hashed again unless it is the same file, with the
// same size and modification time, as at the previous look, and was hashed well after that time.
func (m *Middleware) scan() map[string]fileMark {
	out := map[string]fileMark{}
	for _, path := range m.watched() {
		fi, err := os.Stat(path)
		if err == nil && fi.IsDir() {
			entries, _ := os.ReadDir(path)
			for _, e := range entries {
				if isBindingFile(e) {
					f := filepath.Join(path, e.Name())
					out[f] = m.mark(f)
				}
			}
			continue
		}
		out[path] = m.mark(path)
	}
	return out
}

func (m *Middleware) mark(path string) fileMark {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() { // a pipe would block the poll: load refuses it anyway
		return fileMark{}
	}
	if old, ok := m.reload.marks[path]; ok && old.fi != nil && os.SameFile(old.fi, fi) &&
		old.fi.Size() == fi.Size() && old.fi.ModTime().Equal(fi.ModTime()) &&
		old.seen.Sub(fi.ModTime()) >= racyWindow {
		return old
	}
	mk := fileMark{fi: fi, seen: time.Now()} // file system time, not Config.Now
	data, err := certfile.Read(path, maxWatchedFile)
	if err != nil {
		return fileMark{}
	}
	mk.sum = sha256.Sum256(data)
	return mk
}

// sameFiles compares what two scans found: the same files, with the same contents.
func sameFiles(a, b map[string]fileMark) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || (x.fi == nil) != (y.fi == nil) || x.sum != y.sum {
			return false
		}
	}
	return true
}

// SourceStatus is the state of one reloadable source: the files of the configuration, or
// [RevocationConfig.DenyListURL]. Its fields encode as JSON for a health endpoint.
type SourceStatus struct {
	// Sources are the files (a binding store's directory as itself) or the URL.
	Sources []string `json:"sources"`
	// Generation counts the loads that succeeded, New's included: 1 after New.
	Generation uint64 `json:"generation"`
	// LastAttempt is when the last load was tried, LastSuccess when one last succeeded (by
	// [Config.Now]).
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success"`
	// LastError is why the last load failed (what was loaded before stays in force); empty when
	// it succeeded. It may name files and hosts: do not show it to clients.
	LastError string `json:"last_error,omitempty"`
}

// ReloadStatus is what [Middleware.ReloadStatus] reports.
type ReloadStatus struct {
	// Files are the files that [Middleware.Reload] reads.
	Files SourceStatus `json:"files"`
	// DenyListURL is the state of [RevocationConfig.DenyListURL]; nil without one.
	DenyListURL *SourceStatus `json:"deny_list_url,omitempty"`
}

// ReloadStatus reports the outcome of the latest loads, for health checks: a health endpoint
// may serve it as JSON (to operators only), and alert on a LastError.
func (m *Middleware) ReloadStatus() ReloadStatus {
	r := &m.reload
	r.status.Lock()
	defer r.status.Unlock()
	st := ReloadStatus{Files: r.files}
	st.Files.Sources = slices.Clone(r.files.Sources)
	if m.revoc != nil && m.revoc.remote != nil {
		u := r.url
		u.Sources = slices.Clone(u.Sources)
		st.DenyListURL = &u
	}
	return st
}

// refreshDenyList fetches RevocationConfig.DenyListURL and swaps its entries in; on failure the
// list in force stays. No lock is held during the fetch.
func (m *Middleware) refreshDenyList(ctx context.Context) error {
	rv := m.revoc
	ctx, cancel := context.WithTimeout(ctx, rv.timeout)
	defer cancel()
	entries, err := rv.fetchDenyList(ctx)
	if err == nil {
		rv.remote.Set(entries...)
	}
	m.reportLoad(&m.reload.url, "deny list "+rv.remoteName, err)
	return err
}
