package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/component"
	"github.com/vigil-sec/vigil/internal/components"
	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/pipeline"
	"github.com/vigil-sec/vigil/internal/sink/archivesink"
	"github.com/vigil-sec/vigil/internal/testutil"
)

// captureSource hands its Intake to the test.
type captureSource struct{}

func (captureSource) Start(context.Context) error { return nil }
func (captureSource) Stop(context.Context) error  { return nil }
func (captureSource) Ready() bool                 { return true }
func (captureSource) Describe() string            { return "capture" }

type captureConfig struct{}

func (*captureConfig) Validate() error { return nil }

// TestStoreWithUnitID: storing the same unit again under its ID (a poll page after a
// crash between its store and its cursor write) stores nothing new; without an ID
// it does.
func TestStoreWithUnitID(t *testing.T) {
	var in component.Intake
	reg := components.Builtin()
	reg.Sources["capture"] = components.SourceFactory{
		NewConfig: func() config.Component { return &captureConfig{} },
		New: func(_ config.Component, d component.SourceDeps) (component.Source, error) {
			in = d.Intake
			return captureSource{}, nil
		},
	}
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.Admin.Address = ""
	a := archivesink.NewConfig()
	a.MaxAge = 200 * time.Millisecond
	opts, _ := reg.FormatConfig("json")
	cfg.Sources = []*config.Source{{Name: "cap", Type: "capture", Format: "json", FormatOptions: opts, Settings: &captureConfig{}}}
	cfg.Sinks = []*config.Sink{{Name: "archive", Type: "file_archive", Inputs: []string{"*"}, Settings: a}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{Log: discardLogger(), Version: "test", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	page := func(tag string) component.Records {
		return component.Records{Records: [][]byte{[]byte(fmt.Sprintf(`{"tag":%q,"n":1}`, tag)), []byte(fmt.Sprintf(`{"tag":%q,"n":2}`, tag))}}
	}
	ctx := context.Background()
	withID := page("id")
	withID.ID = "page-1"
	for range 2 {
		if err := in.Store(ctx, withID); err != nil {
			t.Fatal(err)
		}
		if err := in.Store(ctx, page("noid")); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(dir, "archive")
	count := map[string]int{}
	testutil.Eventually(t, 20*time.Second, "6 documents archived", func() bool {
		count = map[string]int{}
		for _, d := range testutil.ArchiveDocs(t, archive) {
			count[fmt.Sprint(d["tag"])]++
		}
		return count["noid"] == 4 && count["id"] >= 2
	})
	// The second ID'd store was published before the last noid one, so a duplicate
	// would be archived by now.
	if count["id"] != 2 {
		t.Fatalf("the unit stored twice under one ID gave %d documents, want 2", count["id"])
	}
}
