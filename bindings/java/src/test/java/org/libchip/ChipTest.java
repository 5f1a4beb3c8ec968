package org.libchip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** The binding against the real model and photos, with the chip tool (the Rust API) as the reference. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ChipTest {
    @TempDir
    static Path tmp;

    Model model;
    String lastName;
    LayerFit fit; // the last layer
    LayerFit shallow; // Reference.SHALLOW_LAYER
    Path fitPath;
    Path shallowPath;
    final List<long[]> progress = Collections.synchronizedList(new ArrayList<>());

    @BeforeAll
    void fitOnce() {
        model = Model.load(Reference.model());
        List<Layer> layers = model.layers();
        lastName = layers.get(layers.size() - 1).name();
        FitOptions opts = new FitOptions().gates(Reference.FIT_GATES).seed(Reference.FIT_SEED).classes(Reference.FIT_CLASSES)
                .progress((kind, done, total) -> {
                    progress.add(new long[] {kind.ordinal(), done, total});
                    return true;
                });
        fit = model.fitLayer(lastName, Images.files(Reference.fitPhotos()), opts);
        shallow = model.fitLayer(Reference.SHALLOW_LAYER, Images.files(Reference.fitPhotos()), opts.progress(null));
        fitPath = tmp.resolve("last.chip");
        shallowPath = tmp.resolve("shallow.chip");
        fit.save(fitPath);
        shallow.save(shallowPath);
    }

    @AfterAll
    void close() {
        shallow.close();
        fit.close();
        model.close();
    }

    static ChipException assertStatus(Status status, Executable call, String... words) {
        ChipException e = assertThrows(ChipException.class, call);
        assertEquals(status, e.status(), e.getMessage());
        assertEquals(status.code(), e.code());
        for (String w : words) {
            assertTrue(e.getMessage().contains(w), () -> "message '" + e.getMessage() + "' does not mention " + w);
        }
        return e;
    }

    Path cliOrSkip() {
        Path cli = Reference.cli();
        if (cli == null && Reference.referenceRequired()) {
            fail("the chip tool was not found: set -Dchip.cli or CHIP_CLI");
        }
        assumeTrue(cli != null, "the chip tool was not found: set -Dchip.cli or CHIP_CLI");
        return cli;
    }

    @Test
    void version() throws Exception {
        assertEquals(Chip.ABI_VERSION, Chip.abiVersion());
        String cargo = Files.readString(Reference.root().resolve("Cargo.toml"));
        assertTrue(cargo.contains("\nversion = \"" + Chip.version() + "\""), Chip.version());
        assertFalse(Status.CANCELLED.description().equals(Status.OK.description()));
    }

    @Test
    void modelInfo() throws Exception {
        assertEquals(1000, model.classCount());
        assertEquals(new Size(224, 224), model.inputSize());
        List<String> labels = Files.readAllLines(Reference.model().resolveSibling("imagenet_classes.txt"));
        for (int c : new int[] {0, 285, 500, 999}) {
            assertEquals(labels.get(c).strip(), model.classLabel(c));
        }
        assertStatus(Status.INVALID_ARGUMENT, () -> model.classLabel(1000));
        assertStatus(Status.INVALID_ARGUMENT, () -> model.classLabel(-1));
    }

    @Test
    void layers() {
        List<Layer> layers = model.layers();
        assertEquals(layers.size(), layers.stream().map(Layer::name).distinct().count());
        Layer last = layers.get(layers.size() - 1);
        // EfficientNet-Lite0's head: 1280 channels at 1/32 of 224.
        assertEquals(new Layer(lastName, 1280, 7, 7), last);
        assertTrue(layers.stream().anyMatch(l -> l.name().equals(Reference.SHALLOW_LAYER) && l.height() == 14));
    }

    @Test
    void fitWeights() {
        assertEquals(lastName, fit.layerName());
        assertEquals(1280, fit.channelCount());
        assertEquals(1000, fit.classCount());
        for (int c : Reference.FIT_CLASSES) {
            float[] row = fit.weightsRow(c);
            long nz = 0;
            for (float v : row) {
                nz += v != 0 ? 1 : 0;
            }
            assertTrue(nz > 0 && nz < row.length, "class " + c + ": " + nz + " nonzero weights");
        }
        for (int c : new int[] {0, 283, 999}) {
            for (float v : fit.weightsRow(c)) {
                assertEquals(0f, v, "unsolved class " + c);
            }
        }
        assertStatus(Status.INVALID_ARGUMENT, () -> fit.weightsRow(1000));
    }

    @Test
    void progressReports() {
        Map<ProgressKind, long[]> last = new EnumMap<>(ProgressKind.class);
        synchronized (progress) {
            for (long[] p : progress) {
                ProgressKind k = ProgressKind.values()[(int) p[0]];
                assertTrue(p[1] <= p[2] && p[2] > 0);
                long[] prev = last.get(k);
                assertTrue(prev == null || prev[1] <= p[1], k + " went back");
                last.put(k, p);
            }
        }
        assertEquals(3, last.size(), "kinds reported: " + last.keySet());
        last.values().forEach(p -> assertEquals(p[2], p[1], "a stage did not finish"));
        // Image reports count fitted rows: each photo and its 2 mosaics (the default).
        assertEquals(3 * Reference.fitPhotos().size(), last.get(ProgressKind.IMAGES)[2]);
        assertEquals(Reference.FIT_CLASSES.length, last.get(ProgressKind.CLASSES)[2]);
    }

    @Test
    void saveLoad() {
        try (LayerFit loaded = LayerFit.load(fitPath)) {
            assertEquals(lastName, loaded.layerName());
            for (int c : new int[] {0, 281, 282, 285}) {
                assertArrayEquals(fit.weightsRow(c), loaded.weightsRow(c));
            }
        }
        Path bad = tmp.resolve("no-such-dir/x.chip");
        assertStatus(Status.IO, () -> fit.save(bad));
        assertFalse(Files.exists(bad));
    }

    /** The binding's fit equals the tool's fit with the same parameters. */
    @Test
    void fitMatchesCli() throws Exception {
        Path cli = cliOrSkip();
        Path list = tmp.resolve("photos.txt");
        Files.write(list, Reference.fitPhotos().stream().map(Path::toString).toList());
        Path out = tmp.resolve("cli.chip");
        Reference.run(cli, List.of("fit", "--model", Reference.model().toString(), "--layer", lastName, "--images",
                list.toString(), "--out", out.toString(), "--gates", "32", "--seed", "0", "--classes", "281,282,285"));
        try (LayerFit ref = LayerFit.load(out)) {
            for (int c : Reference.FIT_CLASSES) {
                double d = Reference.maxAbsDiff(fit.weightsRow(c), ref.weightsRow(c));
                assertTrue(d <= 1e-5, "class " + c + ": fits differ by " + d);
            }
        }
    }

    /** The explanation of the fixed photo equals the Rust API's (the tool on the same fit files). */
    @Test
    void explainMatchesCli() throws Exception {
        Path cli = cliOrSkip();
        try (Explainer e = Explainer.create(model, shallow, fit);
                Explanation x = e.explain(Images.files(Reference.photo()), new ExplainOptions().refined(true))) {
            assertEquals(List.of(Reference.SHALLOW_LAYER, lastName), e.layerNames());
            Reference.CliResult ref = Reference.explain(cli, List.of(shallowPath, fitPath), Reference.photo(),
                    tmp.resolve("cli-explain"), true);
            assertEquals(new Size(ref.width(), ref.height()), x.imageSize(0));
            List<ClassProbability> top = x.top(0);
            assertEquals(ref.top().size(), top.size());
            for (int i = 0; i < top.size(); i++) {
                assertEquals(ref.top().get(i).classId(), top.get(i).classId());
                assertEquals(ref.top().get(i).probability(), top.get(i).probability(), 1e-5);
            }
            List<ClassProbability> classes = x.classes(0);
            assertEquals(1, classes.size());
            assertEquals(top.get(0).classId(), classes.get(0).classId());
            assertEquals(ref.classes().get(0).classId(), classes.get(0).classId());
            assertEquals(2, x.layerCount());
            for (int layer : new int[] {0, 1, Explanation.REFINED}) {
                Reference.CliMap want = layer == Explanation.REFINED ? ref.classes().get(0).refined()
                        : ref.classes().get(0).layers().get(layer);
                ChipMap m = x.map(0, 0, layer);
                assertEquals(want.width(), m.width());
                assertEquals(want.height(), m.height());
                double d = Reference.maxAbsDiff(m.data(), want.data());
                assertTrue(d <= 1e-5, "layer " + layer + ": maps differ by " + d);
                assertTrue(m.max() > 0);
                Box b = x.box(0, 0, layer);
                assertTrue(b.found());
                assertNotNull(want.box());
                assertArrayEquals(want.box(), new int[] {b.x1(), b.y1(), b.x2(), b.y2()}, "layer " + layer);
            }
        }
    }

    @Test
    void refinedIsProductOfMaps() {
        try (Explainer e = Explainer.create(model, shallow, fit);
                Explanation x = e.explain(Images.files(Reference.photo()), new ExplainOptions().refined(true))) {
            ChipMap a = x.map(0, 0, 0);
            ChipMap b = x.map(0, 0, 1);
            ChipMap r = x.map(0, 0, Explanation.REFINED);
            float[] prod = new float[a.data().length];
            for (int i = 0; i < prod.length; i++) {
                prod[i] = a.data()[i] * b.data()[i];
            }
            assertTrue(Reference.maxAbsDiff(prod, r.data()) <= 1e-5 * a.max() * b.max());
        }
        try (Explainer e = Explainer.create(model, fit)) {
            try (Explanation plain = e.explain(Images.files(Reference.photo()), new ExplainOptions())) {
                assertStatus(Status.INVALID_ARGUMENT, () -> plain.map(0, 0, Explanation.REFINED));
            }
            // One layer is not enough.
            assertStatus(Status.INVALID_ARGUMENT,
                    () -> e.explain(Images.files(Reference.photo()), new ExplainOptions().refined(true)));
        }
    }

    /** Files, encoded bytes and preprocessed tensors give the same maps. */
    @Test
    void explainInputsAgree() throws Exception {
        ExplainOptions opts = new ExplainOptions().classes(285, 281);
        byte[] bytes = Files.readAllBytes(Reference.photo());
        Prepared img = model.preprocess(Reference.photo());
        assertEquals(3 * 224 * 224, img.data().length);
        assertArrayEquals(img.data(), model.preprocess(bytes).data());
        try (Explainer e = Explainer.create(model, fit);
                Explanation file = e.explain(Images.files(Reference.photo()), opts);
                Explanation enc = e.explain(Images.encoded(bytes), opts);
                Explanation tensor = e.explain(Images.tensor(img.data(), 1, List.of(img.size())), opts)) {
            for (Explanation x : List.of(enc, tensor)) {
                assertEquals(List.of(285, 281), x.classes(0).stream().map(ClassProbability::classId).toList());
                for (int idx = 0; idx < 2; idx++) {
                    ChipMap a = file.map(0, idx, 0);
                    ChipMap b = x.map(0, idx, 0);
                    assertEquals(a.width(), b.width());
                    assertTrue(Reference.maxAbsDiff(a.data(), b.data()) <= 1e-6);
                }
            }
            ChipMap m = file.map(0, 0, 0);
            assertEquals(img.size(), m.size());
            try (Explanation small = e.explain(Images.files(Reference.photo()), opts.originalSize(false))) {
                ChipMap s = small.map(0, 0, 0);
                assertEquals(224, s.width());
                assertEquals(224, s.height());
            }
        }
    }

    @Test
    void predictionsAndTop() {
        Path coffee = Reference.root().resolve("data/images/skimage/coffee.png");
        List<Path> photos = List.of(Reference.photo(), coffee);
        try (Explainer e = Explainer.create(model, fit); Explanation x = e.explain(Images.files(photos), new ExplainOptions())) {
            assertEquals(2, x.imageCount());
            for (int i = 0; i < 2; i++) {
                float[] pred = model.predict(model.preprocess(photos.get(i)).data(), 1)[0];
                float[] probs = x.probabilities(i);
                assertTrue(Reference.maxAbsDiff(pred, probs) <= 1e-5);
                double sum = 0;
                int best = 0;
                for (int c = 0; c < probs.length; c++) {
                    sum += probs[c];
                    best = probs[c] > probs[best] ? c : best;
                }
                assertEquals(1.0, sum, 1e-3);
                List<ClassProbability> top = x.top(i);
                assertEquals(5, top.size());
                assertEquals(best, top.get(0).classId());
                for (int r = 1; r < top.size(); r++) {
                    assertTrue(top.get(r).probability() <= top.get(r - 1).probability());
                    assertEquals(probs[top.get(r).classId()], top.get(r).probability());
                }
            }
            // A cat and an espresso: ImageNet 285 Egyptian cat, 967 espresso.
            assertEquals(285, x.top(0).get(0).classId());
            assertEquals(967, x.top(1).get(0).classId());
            assertStatus(Status.INVALID_ARGUMENT, () -> x.probabilities(2));
        }
    }

    /** The box equals Chip.localize on the map and a second implementation of the localization. */
    @Test
    void localization() {
        try (Explainer e = Explainer.create(model, fit)) {
            for (float t : new float[] {0.25f, 0.5f}) {
                try (Explanation x = e.explain(Images.files(Reference.photo()), new ExplainOptions().threshold(t))) {
                    ChipMap m = x.map(0, 0, 0);
                    Box box = x.box(0, 0, 0);
                    assertTrue(box.found());
                    assertEquals(box, Chip.localize(m, t));
                    assertArrayEquals(Reference.localize(m.data(), m.width(), m.height(), t),
                            new int[] {box.x1(), box.y1(), box.x2(), box.y2()});
                }
            }
        }
        // Planted: two blobs, the larger one wins; an all-zero map has no box.
        float[] d = new float[80];
        for (int y = 1; y <= 2; y++) {
            for (int x = 1; x <= 2; x++) {
                d[y * 10 + x] = 2;
            }
        }
        for (int y = 4; y <= 6; y++) {
            for (int x = 5; x <= 8; x++) {
                d[y * 10 + x] = 1;
            }
        }
        assertEquals(new Box(5, 4, 8, 6), Chip.localize(new ChipMap(10, 8, d), 0.4f));
        Box none = Chip.localize(new ChipMap(3, 3, new float[9]), 0.25f);
        assertEquals(Box.NONE, none);
        assertFalse(none.found());
        assertEquals(25.0 / 175.0, Chip.iou(new Box(0, 0, 9, 9), new Box(5, 5, 14, 14)), 1e-12);
        assertEquals(1.0, Chip.iou(new Box(5, 4, 8, 6), new Box(5, 4, 8, 6)));
        // No box overlaps nothing, itself included; other negative corners are refused.
        assertEquals(0.0, Chip.iou(Box.NONE, new Box(5, 4, 8, 6)));
        assertEquals(0.0, Chip.iou(new Box(5, 4, 8, 6), Box.NONE));
        assertEquals(0.0, Chip.iou(Box.NONE, Box.NONE));
        assertStatus(Status.INVALID_ARGUMENT, () -> Chip.iou(new Box(-2, 0, 3, 3), new Box(0, 0, 3, 3)));
    }

    @Test
    void cancel() {
        int[] calls = {0};
        FitOptions opts = new FitOptions().gates(8).classes(285).progress((k, done, total) -> {
            calls[0]++;
            return false;
        });
        List<Path> four = Reference.fitPhotos().subList(0, 4);
        assertStatus(Status.CANCELLED, () -> model.fitLayer(lastName, Images.files(four), opts));
        assertEquals(1, calls[0]);
        // In a later stage too.
        opts.progress((k, done, total) -> k != ProgressKind.SUFFIX_RUNS);
        assertStatus(Status.CANCELLED, () -> model.fitLayer(lastName, Images.files(four), opts));
        // A throwing listener cancels the fit and its exception reaches the caller.
        opts.progress((k, done, total) -> {
            throw new IllegalStateException("boom");
        });
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.fitLayer(lastName, Images.files(four), opts));
        assertEquals("boom", e.getMessage());
        assertEquals(Status.CANCELLED, ((ChipException) e.getSuppressed()[0]).status());
        assertEquals(1000, model.classCount());
    }

    @Test
    void errors() throws Exception {
        assertStatus(Status.IO, () -> Model.load(tmp.resolve("missing.onnx")), "missing.onnx");
        assertStatus(Status.MODEL, () -> Model.fromBytes("not an onnx model".getBytes(), new ModelOptions()));
        List<Path> two = Reference.fitPhotos().subList(0, 2);
        assertStatus(Status.UNKNOWN_LAYER, () -> model.fitLayer("no/such/layer", Images.files(two), new FitOptions()), "no/such/layer");
        assertStatus(Status.INVALID_ARGUMENT, () -> model.fitLayer(lastName, Images.files(two), new FitOptions().gates(4).classes(1000)),
                "1000");
        assertStatus(Status.INVALID_ARGUMENT, () -> model.fitLayer(lastName, Images.files(two), new FitOptions().classes(-3)));
        ChipException missing = assertThrows(ChipException.class,
                () -> model.fitLayer(lastName, Images.files(tmp.resolve("nope.png")), new FitOptions()));
        assertTrue(missing.status() == Status.IO || missing.status() == Status.IMAGE, missing.getMessage());
        assertTrue(missing.getMessage().contains("nope.png"));

        assertStatus(Status.IO, () -> LayerFit.load(tmp.resolve("missing.chip")), "missing.chip");
        byte[] good = Files.readAllBytes(fitPath);
        Path cut = tmp.resolve("cut.chip");
        Files.write(cut, java.util.Arrays.copyOf(good, good.length / 2));
        assertStatus(Status.FIT_FILE, () -> LayerFit.load(cut));

        // A fit of another model: the same network with another doc string (protobuf field 6).
        byte[] onnx = Files.readAllBytes(Reference.model());
        byte[] other = java.util.Arrays.copyOf(onnx, onnx.length + 7);
        System.arraycopy(new byte[] {0x32, 0x05, 'o', 't', 'h', 'e', 'r'}, 0, other, onnx.length, 7);
        try (Model m = Model.fromBytes(other, new ModelOptions())) {
            assertStatus(Status.FIT_MISMATCH, () -> Explainer.create(m, fit));
        }

        Explainer e = Explainer.create(model, fit);
        List<Path> photo = List.of(Reference.photo());
        assertStatus(Status.INVALID_ARGUMENT, () -> e.explain(Images.files(photo), new ExplainOptions().threshold(Float.NaN)));
        assertStatus(Status.INVALID_ARGUMENT, () -> e.explain(Images.files(photo), new ExplainOptions().classes(5000)), "5000");
        assertStatus(Status.IMAGE, () -> e.explain(Images.encoded("not an image".getBytes()), new ExplainOptions()));
        ChipException noFile = assertThrows(ChipException.class,
                () -> e.explain(Images.files(tmp.resolve("nope.png")), new ExplainOptions()));
        assertTrue(noFile.status() == Status.IO || noFile.status() == Status.IMAGE, noFile.getMessage());
        assertStatus(Status.INVALID_ARGUMENT, () -> e.explain(Images.tensor(new float[10], 1, null), new ExplainOptions()));
        float[] nan = new float[3 * 224 * 224];
        nan[7] = Float.NaN;
        assertStatus(Status.NON_FINITE, () -> e.explain(Images.tensor(nan, 1, null), new ExplainOptions()));

        Explanation x = e.explain(Images.files(photo), new ExplainOptions());
        assertStatus(Status.INVALID_ARGUMENT, () -> x.map(0, 1, 0));
        assertStatus(Status.INVALID_ARGUMENT, () -> x.map(0, 0, 1));
        assertStatus(Status.INVALID_ARGUMENT, () -> x.box(-1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new ChipMap(3, 3, new float[8]));

        // Closed objects are errors, not crashes; closing twice is fine.
        x.close();
        x.close();
        assertTrue(x.isClosed());
        assertStatus(Status.NULL_POINTER, () -> x.map(0, 0, 0), "closed");
        e.close();
        assertStatus(Status.NULL_POINTER, () -> e.explain(Images.files(photo), new ExplainOptions()));
    }

    /** Explainers keep their own model reference and may be used from many threads at once. */
    @Test
    void explainerOutlivesModelAndConcurrency() throws Exception {
        Explainer e;
        try (Model m = Model.load(Reference.model())) {
            e = Explainer.create(m, fit);
        }
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (e; Explanation want = e.explain(Images.files(Reference.photo()), new ExplainOptions())) {
            float[] ref = want.map(0, 0, 0).data();
            List<Future<Double>> results = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                results.add(pool.submit(() -> {
                    try (Explanation x = e.explain(Images.files(Reference.photo()), new ExplainOptions())) {
                        return Reference.maxAbsDiff(ref, x.map(0, 0, 0).data());
                    }
                }));
            }
            for (Future<Double> f : results) {
                assertTrue(f.get() <= 1e-6);
            }
        } finally {
            pool.shutdown();
        }
    }

    /** Statistics of two shards, merged and solved, give the fit of all their photos: W identical (no mosaics, which tile one call's images). */
    @Test
    void statsShardsEqualOneFit() throws Exception {
        List<Path> photos = Reference.fitPhotos().subList(0, 6);
        FitOptions opts = new FitOptions().gates(16).seed(3).classes(Reference.FIT_CLASSES).mosaics(0);
        try (LayerFit whole = model.fitLayer(lastName, Images.files(photos), opts);
                Stats a = model.collectStats(lastName, Images.files(photos.subList(0, 2)), opts)) {
            // The second shard as encoded bytes: the image source must not matter.
            List<byte[]> enc = new ArrayList<>();
            for (Path p : photos.subList(2, 6)) {
                enc.add(Files.readAllBytes(p));
            }
            Path path = tmp.resolve("b.stats");
            try (Stats b = model.collectStats(lastName, Images.encoded(enc), opts)) {
                assertEquals(2, a.imageCount());
                assertEquals(4, b.imageCount());
                assertEquals(lastName, b.layerName());
                // Through a file, as shards collected elsewhere would come.
                b.save(path);
                assertStatus(Status.IO, () -> b.save(tmp.resolve("no-such-dir/x.stats")));
            }
            try (Stats loaded = Stats.load(path)) {
                a.merge(loaded);
            }
            assertEquals(6, a.imageCount());
            try (LayerFit merged = model.solve(a, opts)) {
                for (int c : new int[] {0, 281, 282, 285}) {
                    assertArrayEquals(whole.weightsRow(c), merged.weightsRow(c), "class " + c);
                }
                assertTrue(Reference.maxAbsDiff(merged.weightsRow(285), new float[1280]) > 0, "the merged fit is all zero");
            }
            // Statistics of another gate seed do not merge, and the failed merge changes nothing.
            try (Stats other = model.collectStats(lastName, Images.files(photos.subList(0, 1)), opts.seed(4))) {
                assertStatus(Status.FIT_MISMATCH, () -> a.merge(other), "seed");
            }
            assertEquals(6, a.imageCount());
            assertStatus(Status.INVALID_ARGUMENT, () -> a.merge(a));
        }
        assertStatus(Status.IO, () -> Stats.load(tmp.resolve("missing.stats")), "missing.stats");
        assertStatus(Status.FIT_FILE, () -> Stats.load(fitPath));
    }

    /** A fit on preprocessed tensors equals the fit on the files they came from. */
    @Test
    void fitTensorEqualsFiles() {
        List<Path> photos = Reference.fitPhotos().subList(0, 3);
        FitOptions opts = new FitOptions().gates(8).classes(285);
        float[] data = new float[3 * 3 * 224 * 224];
        for (int i = 0; i < 3; i++) {
            float[] one = model.preprocess(photos.get(i)).data();
            System.arraycopy(one, 0, data, i * one.length, one.length);
        }
        try (LayerFit a = model.fitLayer(lastName, Images.files(photos), opts);
                LayerFit b = model.fitLayer(lastName, Images.tensor(data, 3, null), opts)) {
            assertArrayEquals(a.weightsRow(285), b.weightsRow(285));
        }
        assertStatus(Status.INVALID_ARGUMENT, () -> model.fitLayer(lastName, Images.tensor(data, 2, null), opts));
        assertStatus(Status.INVALID_ARGUMENT, () -> Images.tensor(data, 3, List.of(new Size(10, 10))));
    }

    /**
     * A preprocessing spec through {@link ModelOptions#preprocess(String)}: its keys are "given" in
     * {@link Model#preprocess()}, the tensor follows it (the sidecar's x = (p - 127) / 128 re-normalised
     * here to p / 255), the probabilities move; an unknown key fails the load naming it.
     */
    @Test
    void preprocessSpec() {
        String side = model.preprocess();
        assertTrue(side.contains("\"sources\":{") && side.contains("\"mean\":\"sidecar\""), side);
        ModelOptions options = new ModelOptions().preprocess("{\"mean\": [0, 0, 0], \"std\": [255, 255, 255]}");
        try (Model given = Model.load(Reference.model(), options)) {
            String described = given.preprocess();
            assertTrue(described.contains("\"mean\":\"given\"") && described.contains("\"std\":\"given\""), described);
            assertTrue(described.contains("\"scale\":\"sidecar\"") && described.contains("\"fingerprint\":\""), described);
            Path photo = Reference.fitPhotos().get(0);
            float[] a = model.preprocess(photo).data();
            float[] b = given.preprocess(photo).data();
            double worst = 0;
            for (int i = 0; i < a.length; i++) {
                worst = Math.max(worst, Math.abs(b[i] - (a[i] * 128.0 + 127.0) / 255.0));
            }
            assertTrue(worst < 1e-5, "the spec's tensor differs from the hand-normalised one by " + worst);
            float[] pa = model.predict(a, 1)[0];
            float[] pb = given.predict(b, 1)[0];
            double moved = 0;
            for (int i = 0; i < pa.length; i++) {
                moved = Math.max(moved, Math.abs(pa[i] - pb[i]));
            }
            assertTrue(moved > 1e-3, "the spec did not change the probabilities: " + moved);
        }
        assertStatus(Status.INVALID_ARGUMENT,
                () -> Model.load(Reference.model(), new ModelOptions().preprocess("{\"mean\": 0.5, \"colour\": \"RGB\"}")),
                "chip_model_options.preprocess", "unknown key 'colour'");
    }
}
