package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"example.com/libchip/internal/testref"
)

// parse reads the program's "key ..." lines into fields by key prefix.
func parse(out string) map[string][]string {
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "at":
			m[f[0]+" at "+f[2]+" "+f[3]] = f[4:]
		case len(f) >= 2 && (f[1] == "box" || f[1] == "size"):
			m[f[0]+" "+f[1]] = f[2:]
		case len(f) >= 1:
			m[f[0]] = f[1:]
		}
	}
	return m
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The program's output for the fixed photo and fit equals the Rust API's results (the chip tool
// explaining with the fit file the program saved), and loading that fit prints the same.
func TestProgramMatchesReference(t *testing.T) {
	root, err := testref.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	list := filepath.Join(tmp, "photos.txt")
	if err := os.WriteFile(list, []byte(strings.Join(testref.FitPhotos(root), "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	fitFile, shallowFile := filepath.Join(tmp, "layer1.chip"), filepath.Join(tmp, "layer0.chip")
	photo := filepath.Join(root, testref.Photo)
	model := testref.ModelPath(root)
	var out, errOut bytes.Buffer
	if err := run([]string{"-model", model, "-photos", list, "-save", tmp, photo}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	t.Log("\n" + out.String())
	got := parse(out.String())

	var again bytes.Buffer
	if err := run([]string{"-model", model, "-fit", shallowFile + "," + fitFile, photo}, &again, &errOut); err != nil {
		t.Fatal(err)
	}
	fitted := strings.SplitN(out.String(), "\n", 2)[1] // without the "fit ..." line
	if again.String() != fitted {
		t.Fatalf("loading the saved fit printed\n%s\nfitting printed\n%s", again.String(), fitted)
	}

	cli, err := testref.CLI(root)
	if err != nil {
		if os.Getenv("CHIP_REQUIRE_REFERENCE") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ref, err := testref.Explain(cli, model, []string{shallowFile, fitFile}, photo, filepath.Join(tmp, "cli"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if top1 := got["top1"]; len(top1) < 2 || top1[0] != strconv.Itoa(ref.Top[0].Class) ||
		math.Abs(num(t, top1[1])-float64(ref.Top[0].Probability)) > 1e-5 {
		t.Fatalf("top1 %v, reference %+v", top1, ref.Top[0])
	}
	if len(ref.Classes[0].Layers) != 2 || ref.Classes[0].Refined == nil {
		t.Fatalf("reference has %d layers", len(ref.Classes[0].Layers))
	}
	if got["layer0"][0] != testref.ShallowLayer {
		t.Fatalf("layer0 is %v", got["layer0"])
	}
	for key, m := range map[string]testref.CLIMap{"layer0": ref.Classes[0].Layers[0], "layer1": ref.Classes[0].Layers[1], "refined": *ref.Classes[0].Refined} {
		if m.Box == nil {
			t.Fatalf("%s: the reference has no box", key)
		}
		wantBox := fmt.Sprintf("%d %d %d %d", m.Box[0], m.Box[1], m.Box[2], m.Box[3])
		if b := strings.Join(got[key+" box"], " "); b != wantBox {
			t.Fatalf("%s box %q, reference %q", key, b, wantBox)
		}
		size := got[key+" size"]
		if len(size) != 6 || size[0] != strconv.Itoa(m.Width) || size[1] != strconv.Itoa(m.Height) {
			t.Fatalf("%s size %v, reference %dx%d", key, size, m.Width, m.Height)
		}
		sum, mx := 0.0, 0.0
		for _, v := range m.Data {
			sum += float64(v)
			mx = math.Max(mx, float64(v))
		}
		if d := math.Abs(num(t, size[3]) - sum); d > 1e-5*math.Max(1, sum) {
			t.Fatalf("%s sum %s, reference %g", key, size[3], sum)
		}
		if d := math.Abs(num(t, size[5]) - mx); d > 1e-5 {
			t.Fatalf("%s max %s, reference %g", key, size[5], mx)
		}
		for _, p := range SamplePoints(m.Width, m.Height) {
			v := got[fmt.Sprintf("%s at %d %d", key, p[0], p[1])]
			if len(v) != 1 {
				t.Fatalf("%s: no value at %v", key, p)
			}
			if d := math.Abs(num(t, v[0]) - float64(m.Data[p[1]*m.Width+p[0]])); d > 1e-5 {
				t.Fatalf("%s at %v: %s, reference %g", key, p, v[0], m.Data[p[1]*m.Width+p[0]])
			}
		}
	}
}

func TestProgramErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-model", filepath.Join(t.TempDir(), "none.onnx"), "-fit", "x.chip", "photo.png"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "none.onnx") {
		t.Fatalf("missing model: %v", err)
	}
	if err := run([]string{"a.png", "b.png"}, &out, &errOut); err == nil {
		t.Fatal("two photos accepted")
	}
}
