package org.libchip;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the tests share: the fixed inputs (model, photos, fit parameters), the results of the chip
 * command line tool (the Rust API) on the same fit files, an NPY reader, a small JSON reader and a
 * second, independent implementation of map localization.
 */
final class Reference {
    private Reference() {}

    /** The fixed fit: 16 photos x 32 gates, three cat classes, on the last layer and SHALLOW_LAYER (14x14). */
    static final int[] FIT_CLASSES = {281, 282, 285};
    static final long FIT_GATES = 32;
    static final long FIT_SEED = 0;
    static final String SHALLOW_LAYER = "/_blocks.10/Add_output_0";
    static final String PHOTO = "data/images/skimage/chelsea.png";
    private static final String[] FIT_PHOTOS = {
        "skimage/astronaut.png", "skimage/camera.png", "skimage/chelsea.png", "skimage/coffee.png",
        "skimage/hubble_deep_field.jpg", "skimage/motorcycle_left.png", "skimage/rocket.jpg",
        "mpl/grace_hopper.jpg",
        "aib/0.jpg", "aib/1.jpg", "aib/2.jpg", "aib/3.jpg", "aib/4.jpg", "aib/5.jpg", "aib/6.jpg", "aib/7.jpg",
    };

    /** The libchip checkout: the first parent of the working directory with Cargo.toml and data/models. */
    static Path root() {
        Path dir = Path.of("").toAbsolutePath();
        for (Path d = dir; d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("Cargo.toml")) && Files.isDirectory(d.resolve("data/models"))) {
                return d;
            }
        }
        throw new IllegalStateException("no libchip checkout with data/models above " + dir + " (run scripts/setup.sh)");
    }

    static Path model() {
        String env = System.getenv("CHIP_MODEL");
        return env != null && !env.isEmpty() ? Path.of(env) : root().resolve("data/models/efficientnet_lite0.onnx");
    }

    static Path photo() {
        return root().resolve(PHOTO);
    }

    static List<Path> fitPhotos() {
        List<Path> out = new ArrayList<>();
        for (String p : FIT_PHOTOS) {
            out.add(root().resolve("data/images").resolve(p));
        }
        return out;
    }

    /** The chip tool: system property chip.cli, CHIP_CLI, else a build in the cargo target folder; null if none. */
    static Path cli() {
        for (String v : new String[] {System.getProperty("chip.cli"), System.getenv("CHIP_CLI")}) {
            if (v != null && !v.isEmpty()) {
                return Path.of(v);
            }
        }
        List<Path> targets = new ArrayList<>();
        String t = System.getenv("CARGO_TARGET_DIR");
        if (t != null && !t.isEmpty()) {
            targets.add(Path.of(t));
        }
        targets.add(root().resolve("target"));
        for (Path target : targets) {
            for (String prof : new String[] {"release", "debug"}) {
                Path p = target.resolve(prof).resolve("chip");
                if (Files.isRegularFile(p)) {
                    return p;
                }
            }
        }
        return null;
    }

    static boolean referenceRequired() {
        return Boolean.parseBoolean(System.getProperty("chip.require.reference", "false"))
                || System.getenv("CHIP_REQUIRE_REFERENCE") != null;
    }

    /** Runs the tool; returns its stdout, throws with its stderr on failure. */
    static String run(Path cli, List<String> args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(cli.toString());
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.PIPE).start();
        byte[] errBytes;
        String out;
        try (InputStream o = p.getInputStream(); InputStream e = p.getErrorStream()) {
            ByteArrayOutputStream errBuf = new ByteArrayOutputStream();
            Thread drain = new Thread(() -> {
                try {
                    e.transferTo(errBuf);
                } catch (IOException ignored) {
                    // the exit status reports the failure
                }
            });
            drain.start();
            out = new String(o.readAllBytes(), StandardCharsets.UTF_8);
            drain.join();
            errBytes = errBuf.toByteArray();
        }
        if (p.waitFor() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed: " + new String(errBytes, StandardCharsets.UTF_8));
        }
        return out;
    }

    /** One map of the tool's output. */
    record CliMap(int[] box, int width, int height, float[] data) {}

    record CliClass(int classId, float probability, List<CliMap> layers, CliMap refined) {}

    record CliResult(int width, int height, List<ClassProbability> top, List<CliClass> classes) {}

    /** chip explain --json --save-map on one image with fit files (top-1 class), maps read back. */
    static CliResult explain(Path cli, List<Path> fits, Path image, Path outDir, boolean refined)
            throws IOException, InterruptedException {
        return explain(cli, fits, image, outDir, refined ? List.of("--refined") : List.of());
    }

    /** chip explain --top-k k --json --save-map on one image with fit files, maps read back. */
    static CliResult explainTopK(Path cli, List<Path> fits, Path image, Path outDir, int k)
            throws IOException, InterruptedException {
        return explain(cli, fits, image, outDir, List.of("--top-k", String.valueOf(k)));
    }

    @SuppressWarnings("unchecked")
    private static CliResult explain(Path cli, List<Path> fits, Path image, Path outDir, List<String> extra)
            throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(List.of("explain", "--model", model().toString(), "--out", outDir.toString(),
                "--json", "--save-map"));
        for (Path f : fits) {
            args.add("--fit");
            args.add(f.toString());
        }
        args.addAll(extra);
        args.add(image.toString());
        Map<String, Object> rec = (Map<String, Object>) Json.parse(run(cli, args).strip());
        List<ClassProbability> top = new ArrayList<>();
        for (Object o : (List<Object>) rec.get("top")) {
            Map<String, Object> t = (Map<String, Object>) o;
            top.add(new ClassProbability(((Number) t.get("class")).intValue(), ((Number) t.get("probability")).floatValue()));
        }
        List<CliClass> classes = new ArrayList<>();
        for (Object o : (List<Object>) rec.get("classes")) {
            Map<String, Object> c = (Map<String, Object>) o;
            List<CliMap> layers = new ArrayList<>();
            for (Object l : (List<Object>) c.get("layers")) {
                layers.add(readMap((Map<String, Object>) l));
            }
            CliMap ref = c.get("refined") == null ? null : readMap((Map<String, Object>) c.get("refined"));
            classes.add(new CliClass(((Number) c.get("class")).intValue(), ((Number) c.get("probability")).floatValue(),
                    layers, ref));
        }
        return new CliResult(((Number) rec.get("width")).intValue(), ((Number) rec.get("height")).intValue(), top, classes);
    }

    @SuppressWarnings("unchecked")
    private static CliMap readMap(Map<String, Object> m) throws IOException {
        int[] box = null;
        if (m.get("box") != null) {
            List<Object> b = (List<Object>) m.get("box");
            box = b.stream().mapToInt(v -> ((Number) v).intValue()).toArray();
            // No box is null or all four corners -1.
            if (java.util.Arrays.equals(box, new int[] {-1, -1, -1, -1})) {
                box = null;
            }
        }
        Npy npy = readNpy(Path.of((String) m.get("map")));
        if (npy.shape.length != 2) {
            throw new IOException("map is not 2-D");
        }
        return new CliMap(box, npy.shape[1], npy.shape[0], npy.data);
    }

    record Npy(int[] shape, float[] data) {}

    private static final Pattern DESCR = Pattern.compile("'descr':\\s*'([^']*)'");
    private static final Pattern SHAPE = Pattern.compile("'shape':\\s*\\(([^)]*)\\)");

    /** A little-endian float32 C-order .npy file. */
    static Npy readNpy(Path path) throws IOException {
        byte[] b = Files.readAllBytes(path);
        if (b.length < 10 || (b[0] & 0xff) != 0x93 || !new String(b, 1, 5, StandardCharsets.US_ASCII).equals("NUMPY")) {
            throw new IOException(path + ": not an NPY file");
        }
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int hlen;
        int start;
        if (b[6] == 1) {
            hlen = bb.getShort(8) & 0xffff;
            start = 10;
        } else {
            hlen = bb.getInt(8);
            start = 12;
        }
        String header = new String(b, start, hlen, StandardCharsets.US_ASCII);
        Matcher d = DESCR.matcher(header);
        if (!d.find() || !d.group(1).equals("<f4") || header.contains("'fortran_order': True")) {
            throw new IOException(path + ": not little-endian float32 in C order: " + header);
        }
        Matcher s = SHAPE.matcher(header);
        if (!s.find()) {
            throw new IOException(path + ": no shape: " + header);
        }
        int[] shape = java.util.Arrays.stream(s.group(1).split(",")).map(String::strip).filter(x -> !x.isEmpty())
                .mapToInt(Integer::parseInt).toArray();
        long n = 1;
        for (int v : shape) {
            n *= v;
        }
        if (b.length - start - hlen != 4 * n) {
            throw new IOException(path + ": " + (b.length - start - hlen) + " data bytes for the shape");
        }
        float[] data = new float[(int) n];
        bb.position(start + hlen);
        bb.asFloatBuffer().get(data);
        return new Npy(shape, data);
    }

    static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            return Double.POSITIVE_INFINITY;
        }
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            double v = Math.abs((double) a[i] - b[i]);
            if (v > d || Double.isNaN(v)) {
                d = v;
            }
        }
        return d;
    }

    /** A second implementation of the localization: largest 8-connected region of {map >= t * max}, its box. */
    static int[] localize(float[] data, int width, int height, float t) {
        float mx = 0;
        for (float v : data) {
            if (Float.isNaN(v)) {
                return null;
            }
            mx = Math.max(mx, v);
        }
        if (!(mx > 0)) {
            return null;
        }
        float cut = t * mx;
        boolean[] seen = new boolean[data.length];
        int[] stack = new int[data.length];
        int best = 0;
        int[] box = null;
        for (int start = 0; start < data.length; start++) {
            if (seen[start] || data[start] < cut) {
                continue;
            }
            seen[start] = true;
            int top = 0;
            stack[top++] = start;
            int size = 0;
            int x1 = width;
            int y1 = height;
            int x2 = -1;
            int y2 = -1;
            while (top > 0) {
                int p = stack[--top];
                size++;
                int x = p % width;
                int y = p / width;
                x1 = Math.min(x1, x);
                y1 = Math.min(y1, y);
                x2 = Math.max(x2, x);
                y2 = Math.max(y2, y);
                for (int dy = -1; dy <= 1; dy++) {
                    for (int dx = -1; dx <= 1; dx++) {
                        int nx = x + dx;
                        int ny = y + dy;
                        if (nx < 0 || ny < 0 || nx >= width || ny >= height) {
                            continue;
                        }
                        int q = ny * width + nx;
                        if (!seen[q] && data[q] >= cut) {
                            seen[q] = true;
                            stack[top++] = q;
                        }
                    }
                }
            }
            if (size > best) {
                best = size;
                box = new int[] {x1, y1, x2, y2};
            }
        }
        return box;
    }

    /** A small JSON reader (objects, arrays, strings, numbers, true, false, null) for the tool's output. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            Json j = new Json(text);
            Object v = j.value();
            j.ws();
            if (j.i != text.length()) {
                throw new IllegalArgumentException("trailing text at " + j.i);
            }
            return v;
        }

        private void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private Object value() {
            ws();
            char c = s.charAt(i);
            switch (c) {
                case '{': {
                    i++;
                    Map<String, Object> m = new LinkedHashMap<>();
                    ws();
                    if (s.charAt(i) == '}') {
                        i++;
                        return m;
                    }
                    while (true) {
                        ws();
                        String k = string();
                        ws();
                        expect(':');
                        m.put(k, value());
                        ws();
                        if (s.charAt(i) == ',') {
                            i++;
                            continue;
                        }
                        expect('}');
                        return m;
                    }
                }
                case '[': {
                    i++;
                    List<Object> l = new ArrayList<>();
                    ws();
                    if (s.charAt(i) == ']') {
                        i++;
                        return l;
                    }
                    while (true) {
                        l.add(value());
                        ws();
                        if (s.charAt(i) == ',') {
                            i++;
                            continue;
                        }
                        expect(']');
                        return l;
                    }
                }
                case '"':
                    return string();
                default:
                    if (s.startsWith("true", i)) {
                        i += 4;
                        return Boolean.TRUE;
                    }
                    if (s.startsWith("false", i)) {
                        i += 5;
                        return Boolean.FALSE;
                    }
                    if (s.startsWith("null", i)) {
                        i += 4;
                        return null;
                    }
                    int st = i;
                    while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                        i++;
                    }
                    if (st == i) {
                        throw new IllegalArgumentException("unexpected '" + c + "' at " + i);
                    }
                    return Double.parseDouble(s.substring(st, i));
            }
        }

        private void expect(char c) {
            if (s.charAt(i) != c) {
                throw new IllegalArgumentException("expected '" + c + "' at " + i);
            }
            i++;
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n' -> b.append('\n');
                    case 't' -> b.append('\t');
                    case 'r' -> b.append('\r');
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'u' -> {
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> b.append(e);
                }
            }
        }
    }
}
