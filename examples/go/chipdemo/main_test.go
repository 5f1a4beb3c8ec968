package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"example.com/libchip/testref"
)

// demoArgs are the fixed inputs: the last layer (the conv head), the fixed fit photos, the cat photo.
func demoArgs(t *testing.T, root, fitFile string) []string {
	t.Helper()
	last := lastLayer(t, root)
	return append([]string{testref.ModelPath(root), last, fitFile, filepath.Join(root, testref.Photo)}, testref.FitPhotos(root)...)
}

func lastLayer(t *testing.T, root string) string {
	t.Helper()
	cli, err := testref.CLI(root)
	if err != nil {
		// The model's last candidate layer, as the binding's tests check it.
		return "/_swish_1/Clip_output_0"
	}
	out, err := exec.Command(cli, "layers", "--model", testref.ModelPath(root)).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Fields(lines[len(lines)-1])[0]
}

func requireOrSkip(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CHIP_REQUIRE_REFERENCE") != "" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// The program prints exactly what the C example prints for the same input.
func TestProgramMatchesCExample(t *testing.T) {
	root, err := testref.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cExample := os.Getenv("CHIP_C_EXAMPLE")
	if cExample == "" {
		requireOrSkip(t, fmt.Errorf("CHIP_C_EXAMPLE (the built examples/c program) is not set"))
	}
	tmp := t.TempDir()
	var out bytes.Buffer
	if err := run(demoArgs(t, root, filepath.Join(tmp, "go.chip")), &out); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cExample, demoArgs(t, root, filepath.Join(tmp, "c.chip"))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", cExample, err, stderr.String())
	}
	t.Logf("\n%s", out.String())
	if out.String() != string(want) {
		t.Fatalf("Go program printed\n%s\nthe C example printed\n%s", out.String(), want)
	}
}

// The program's numbers equal the Rust API's: the chip tool explaining with the fit file the
// program wrote.
func TestProgramMatchesCLI(t *testing.T) {
	root, err := testref.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := testref.CLI(root)
	if err != nil {
		requireOrSkip(t, err)
	}
	tmp := t.TempDir()
	fitFile := filepath.Join(tmp, "fit.chip")
	var out bytes.Buffer
	if err := run(demoArgs(t, root, fitFile), &out); err != nil {
		t.Fatal(err)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(l)
		lines[strings.TrimSuffix(f[0], ":")] = f[1:]
	}
	ref, err := testref.ExplainTopK(cli, testref.ModelPath(root), []string{fitFile}, filepath.Join(root, testref.Photo), filepath.Join(tmp, "cli"), 3)
	if err != nil {
		t.Fatal(err)
	}
	for k, c := range ref.Classes {
		got := lines[fmt.Sprintf("top%d", k+1)]
		p := num(t, got[len(got)-1])
		if got[0] != strconv.Itoa(c.Class) || math.Abs(p-float64(c.Probability)) > 1e-5 {
			t.Fatalf("top%d %v, reference %d %v", k+1, got, c.Class, c.Probability)
		}
	}
	m := ref.Classes[0].Layers[0]
	if m.Box == nil || strings.Join(lines["box"], " ") != fmt.Sprintf("%d %d %d %d", m.Box[0], m.Box[1], m.Box[2], m.Box[3]) {
		t.Fatalf("box %v, reference %v", lines["box"], m.Box)
	}
	mp := lines["map"] // WxH sum S max M center C
	if mp[0] != fmt.Sprintf("%dx%d", m.Width, m.Height) {
		t.Fatalf("map size %s, reference %dx%d", mp[0], m.Width, m.Height)
	}
	sum, mx := 0.0, 0.0
	for _, v := range m.Data {
		sum += float64(v)
		mx = math.Max(mx, float64(v))
	}
	center := float64(m.Data[(m.Height/2)*m.Width+m.Width/2])
	for i, want := range map[int]float64{2: sum, 4: mx, 6: center} {
		// Printed with 7 significant digits.
		if got := num(t, mp[i]); math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Fatalf("map %s %s, reference %g", mp[i-1], mp[i], want)
		}
	}
	if mx <= 0 {
		t.Fatal("the reference map is empty")
	}
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestProgramErrors(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	err := run([]string{filepath.Join(dir, "none.onnx"), "layer", filepath.Join(dir, "x.chip"), "photo.png", "a.png"}, &out)
	if err == nil || !strings.Contains(err.Error(), "none.onnx") {
		t.Fatalf("missing model: %v", err)
	}
	if err := run([]string{"a", "b"}, &out); err == nil {
		t.Fatal("too few arguments accepted")
	}
}
