// chipdemo fits two layers of an image classifier (or loads saved fits) and explains one photo: it
// prints the top-1 class and, for each layer's map and the Refined CHIP map, the box, the sum and a
// few values.
//
//	chipdemo -photos photos.txt -save fits data/images/skimage/chelsea.png
//	chipdemo -fit fits/layer0.chip,fits/layer1.chip data/images/skimage/chelsea.png
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"example.com/libchip/chip"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chipdemo:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chipdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", filepath.Join("data", "models", "efficientnet_lite0.onnx"), "ONNX classifier")
	fitPaths := fs.String("fit", "", "load these fits (comma-separated) instead of fitting")
	saveDir := fs.String("save", "", "write the fits to this folder as layer0.chip, layer1.chip, ...")
	photos := fs.String("photos", "", "text file listing the photos to fit on, one path per line")
	layerList := fs.String("layers", "/_blocks.10/Add_output_0,last", "layers to fit, comma-separated, shallow first; last = the last candidate layer")
	gates := fs.Int("gates", 32, "gate vectors")
	seed := fs.Uint64("seed", 0, "gate seed")
	classList := fs.String("classes", "281,282,285", "classes to solve, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one photo to explain, got %d arguments", fs.NArg())
	}
	photo := fs.Arg(0)

	model, err := chip.LoadModel(*modelPath, nil)
	if err != nil {
		return err
	}
	defer model.Close()

	var fits []*chip.LayerFit
	defer func() {
		for _, f := range fits {
			f.Close()
		}
	}()
	if *fitPaths != "" {
		for _, p := range strings.Split(*fitPaths, ",") {
			f, err := chip.LoadLayerFit(p)
			if err != nil {
				return err
			}
			fits = append(fits, f)
		}
	} else {
		if *photos == "" {
			return fmt.Errorf("give -fit or -photos")
		}
		paths, err := readList(*photos)
		if err != nil {
			return err
		}
		classes, err := parseClasses(*classList)
		if err != nil {
			return err
		}
		all, err := model.Layers()
		if err != nil {
			return err
		}
		opts := chip.DefaultFitOptions()
		opts.Gates, opts.Seed, opts.Classes = *gates, *seed, classes
		opts.Progress = func(p chip.Progress) bool {
			if p.Done == p.Total {
				fmt.Fprintf(stderr, "fit: %s %d/%d\n", p.Kind, p.Done, p.Total)
			}
			return true
		}
		for _, layer := range strings.Split(*layerList, ",") {
			if layer == "last" {
				layer = all[len(all)-1].Name
			}
			f, err := model.FitLayer(layer, paths, &opts)
			if err != nil {
				return err
			}
			fits = append(fits, f)
		}
		fmt.Fprintf(stdout, "fit %d photos x %d gates, classes %s\n", len(paths), *gates, *classList)
	}
	for i, f := range fits {
		if *saveDir != "" {
			if err := f.Save(filepath.Join(*saveDir, fmt.Sprintf("layer%d.chip", i))); err != nil {
				return err
			}
		}
		name, err := f.LayerName()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "layer%d %s\n", i, name)
	}

	explainer, err := chip.NewExplainer(model, fits...)
	if err != nil {
		return err
	}
	defer explainer.Close()
	opts := chip.DefaultExplainOptions()
	opts.Refined = len(fits) > 1
	x, err := explainer.ExplainFiles([]string{photo}, &opts)
	if err != nil {
		return err
	}
	defer x.Close()

	top, err := x.Top(0)
	if err != nil {
		return err
	}
	label, err := model.ClassLabel(top[0].Class)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "top1 %d %.6f %s\n", top[0].Class, top[0].Probability, label)
	type output struct {
		key   string
		index int
	}
	var maps []output
	for i := range fits {
		maps = append(maps, output{fmt.Sprintf("layer%d", i), i})
	}
	if opts.Refined {
		maps = append(maps, output{"refined", chip.Refined})
	}
	for _, l := range maps {
		m, err := x.Map(0, 0, l.index)
		if err != nil {
			return err
		}
		box, found, err := x.Box(0, 0, l.index)
		if err != nil {
			return err
		}
		if found {
			fmt.Fprintf(stdout, "%s box %d %d %d %d\n", l.key, box.X1, box.Y1, box.X2, box.Y2)
		} else {
			fmt.Fprintf(stdout, "%s box none\n", l.key)
		}
		fmt.Fprintf(stdout, "%s size %d %d sum %.9g max %.9g\n", l.key, m.Width, m.Height, m.Sum(), m.Max())
		for _, p := range SamplePoints(m.Width, m.Height) {
			fmt.Fprintf(stdout, "%s at %d %d %.9g\n", l.key, p[0], p[1], m.At(p[0], p[1]))
		}
	}
	return nil
}

// SamplePoints are the pixels whose map values are printed: the centre and the four points halfway
// to the corners.
func SamplePoints(w, h int) [][2]int {
	return [][2]int{{w / 2, h / 2}, {w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4}, {3 * w / 4, 3 * h / 4}}
}

func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			if !filepath.IsAbs(line) {
				line = filepath.Join(filepath.Dir(path), line)
			}
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

func parseClasses(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		c, err := strconv.Atoi(f)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("%q is not a class id", f)
		}
		out = append(out, c)
	}
	return out, nil
}
