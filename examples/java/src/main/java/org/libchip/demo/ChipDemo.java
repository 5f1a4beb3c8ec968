package org.libchip.demo;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.libchip.Box;
import org.libchip.ChipException;
import org.libchip.ChipMap;
import org.libchip.ClassProbability;
import org.libchip.ExplainOptions;
import org.libchip.Explainer;
import org.libchip.Explanation;
import org.libchip.FitOptions;
import org.libchip.Layer;
import org.libchip.LayerFit;
import org.libchip.Model;

/**
 * Fits two layers of an image classifier (or loads saved fits) and explains one photo: prints the
 * top-1 class and, for each layer's map and the Refined CHIP map, the box, the sum and a few values.
 *
 * <pre>
 * ChipDemo --photos photos.txt --save fits data/images/skimage/chelsea.png
 * ChipDemo --fit fits/layer0.chip,fits/layer1.chip data/images/skimage/chelsea.png
 * </pre>
 */
public final class ChipDemo {
    private ChipDemo() {}

    public static void main(String[] args) {
        try {
            run(args, System.out, System.err);
        } catch (ChipException | IOException | IllegalArgumentException e) {
            System.err.println("ChipDemo: " + e.getMessage());
            System.exit(1);
        }
    }

    /** The pixels whose map values are printed: the centre and the four points halfway to the corners. */
    public static int[][] samplePoints(int w, int h) {
        return new int[][] {{w / 2, h / 2}, {w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4}, {3 * w / 4, 3 * h / 4}};
    }

    public static void run(String[] args, PrintStream out, PrintStream err) throws IOException {
        Path modelPath = Path.of("data", "models", "efficientnet_lite0.onnx");
        String fitPaths = null;
        Path saveDir = null;
        Path photos = null;
        String layerList = "/_blocks.10/Add_output_0,last";
        long gates = 32;
        long seed = 0;
        String classList = "281,282,285";
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.startsWith("--") && i + 1 >= args.length) {
                throw new IllegalArgumentException(a + " needs a value");
            }
            switch (a) {
                case "--model" -> modelPath = Path.of(args[++i]);
                case "--fit" -> fitPaths = args[++i];
                case "--save" -> saveDir = Path.of(args[++i]);
                case "--photos" -> photos = Path.of(args[++i]);
                case "--layers" -> layerList = args[++i];
                case "--gates" -> gates = Long.parseLong(args[++i]);
                case "--seed" -> seed = Long.parseUnsignedLong(args[++i]);
                case "--classes" -> classList = args[++i];
                default -> {
                    if (a.startsWith("--")) {
                        throw new IllegalArgumentException("unknown option " + a);
                    }
                    rest.add(a);
                }
            }
        }
        if (rest.size() != 1) {
            throw new IllegalArgumentException("want one photo to explain, got " + rest.size() + " arguments");
        }
        Path photo = Path.of(rest.get(0));

        List<LayerFit> fits = new ArrayList<>();
        try (Model model = Model.load(modelPath)) {
            if (fitPaths != null) {
                for (String p : fitPaths.split(",")) {
                    fits.add(LayerFit.load(Path.of(p)));
                }
            } else {
                if (photos == null) {
                    throw new IllegalArgumentException("give --fit or --photos");
                }
                List<Path> paths = readList(photos);
                int[] classes = Arrays.stream(classList.split(",")).map(String::trim).filter(s -> !s.isEmpty())
                        .mapToInt(Integer::parseInt).toArray();
                List<Layer> all = model.layers();
                FitOptions opts = new FitOptions().gates(gates).seed(seed).classes(classes)
                        .progress((kind, done, total) -> {
                            if (done == total) {
                                err.printf("fit: %s %d/%d%n", kind, done, total);
                            }
                            return true;
                        });
                for (String layer : layerList.split(",")) {
                    String name = layer.equals("last") ? all.get(all.size() - 1).name() : layer;
                    fits.add(model.fitLayer(name, paths, opts));
                }
                out.printf("fit %d photos x %d gates, classes %s%n", paths.size(), gates, classList);
            }
            for (int i = 0; i < fits.size(); i++) {
                if (saveDir != null) {
                    fits.get(i).save(saveDir.resolve("layer" + i + ".chip"));
                }
                out.printf("layer%d %s%n", i, fits.get(i).layerName());
            }
            ExplainOptions opts = new ExplainOptions().refined(fits.size() > 1);
            try (Explainer explainer = Explainer.create(model, fits.toArray(new LayerFit[0]));
                    Explanation x = explainer.explainFiles(List.of(photo), opts)) {
                ClassProbability top = x.top(0).get(0);
                out.printf("top1 %d %.6f %s%n", top.classId(), top.probability(), model.classLabel(top.classId()));
                List<String> keys = new ArrayList<>();
                List<Integer> layers = new ArrayList<>();
                for (int i = 0; i < fits.size(); i++) {
                    keys.add("layer" + i);
                    layers.add(i);
                }
                if (opts.refined()) {
                    keys.add("refined");
                    layers.add(Explanation.REFINED);
                }
                for (int k = 0; k < keys.size(); k++) {
                    String key = keys.get(k);
                    ChipMap m = x.map(0, 0, layers.get(k));
                    Optional<Box> box = x.box(0, 0, layers.get(k));
                    out.println(box.map(b -> key + " box " + b.x1() + " " + b.y1() + " " + b.x2() + " " + b.y2())
                            .orElse(key + " box none"));
                    out.printf("%s size %d %d sum %s max %s%n", key, m.width(), m.height(), fmt(m.sum()), fmt(m.max()));
                    for (int[] p : samplePoints(m.width(), m.height())) {
                        out.printf("%s at %d %d %s%n", key, p[0], p[1], fmt(m.at(p[0], p[1])));
                    }
                }
            }
        } finally {
            fits.forEach(LayerFit::close);
        }
    }

    /** Nine significant digits, as the Go program prints them (%.9g without trailing zeros). */
    private static String fmt(double v) {
        return new java.math.BigDecimal(v).round(new java.math.MathContext(9)).stripTrailingZeros().toPlainString();
    }

    private static List<Path> readList(Path list) throws IOException {
        List<Path> out = new ArrayList<>();
        for (String line : Files.readAllLines(list)) {
            line = line.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            Path p = Path.of(line);
            out.add(p.isAbsolute() ? p : list.toAbsolutePath().getParent().resolve(p));
        }
        return out;
    }
}
