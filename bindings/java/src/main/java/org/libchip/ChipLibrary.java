package org.libchip;

import com.sun.jna.Callback;
import com.sun.jna.IntegerType;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.ByReference;
import com.sun.jna.ptr.DoubleByReference;
import com.sun.jna.ptr.FloatByReference;
import com.sun.jna.ptr.PointerByReference;
import java.util.Map;

/** The C API of libchip (include/chip.h), mapped with JNA. Internal: use the wrapper classes. */
interface ChipLibrary extends Library {
    ChipLibrary LIB = Native.load("chip", ChipLibrary.class, Map.of(Library.OPTION_STRING_ENCODING, "UTF-8"));

    /** size_t. */
    final class SizeT extends IntegerType {
        private static final long serialVersionUID = 1L;

        public SizeT() {
            this(0);
        }

        public SizeT(long value) {
            super(Native.SIZE_T_SIZE, value, true);
        }
    }

    /** size_t*. */
    final class SizeTByReference extends ByReference {
        public SizeTByReference() {
            super(Native.SIZE_T_SIZE);
            getPointer().setLong(0, 0);
        }

        public long getValue() {
            return Native.SIZE_T_SIZE == 8 ? getPointer().getLong(0) : getPointer().getInt(0) & 0xffffffffL;
        }
    }

    @Structure.FieldOrder({"struct_size", "device", "device_id", "threads", "ort_lib", "preprocess"})
    final class CModelOptions extends Structure {
        public SizeT struct_size;
        public int device;
        public int device_id;
        public SizeT threads;
        public Pointer ort_lib;
        public Pointer preprocess;
    }

    interface ProgressCallback extends Callback {
        int invoke(Pointer userData, int kind, SizeT done, SizeT total);
    }

    @Structure.FieldOrder({"struct_size", "gates", "lambda_rel", "sigma2_rel", "seed", "gate_batch", "image_batch",
        "max_iter", "rho", "classes", "class_count", "progress", "user_data", "target", "intercept", "nonneg",
        "augment", "mosaics"})
    final class CFitOptions extends Structure {
        public SizeT struct_size;
        public SizeT gates;
        public double lambda_rel;
        public double sigma2_rel;
        public long seed;
        public SizeT gate_batch;
        public SizeT image_batch;
        public SizeT max_iter;
        public double rho;
        public Pointer classes;
        public SizeT class_count;
        public ProgressCallback progress;
        public Pointer user_data;
        public int target;
        public int intercept;
        public int nonneg;
        public SizeT augment;
        public SizeT mosaics;
    }

    @Structure.FieldOrder({"struct_size", "top_k", "classes", "class_count", "refined", "threshold", "original_size"})
    final class CExplainOptions extends Structure {
        public SizeT struct_size;
        public SizeT top_k;
        public Pointer classes;
        public SizeT class_count;
        public int refined;
        public float threshold;
        public int original_size;
    }

    @Structure.FieldOrder({"width", "height"})
    final class CSize extends Structure {
        public int width; // uint32_t; sides are at most 16384
        public int height;
    }

    @Structure.FieldOrder({"struct_size", "kind", "count", "paths", "data", "lens", "tensor", "tensor_len", "sizes"})
    final class CImages extends Structure {
        public SizeT struct_size;
        public int kind;
        public SizeT count;
        public Pointer paths;
        public Pointer data;
        public Pointer lens;
        public Pointer tensor;
        public SizeT tensor_len;
        public Pointer sizes;
    }

    @Structure.FieldOrder({"x1", "y1", "x2", "y2"})
    final class CBox extends Structure {
        public int x1;
        public int y1;
        public int x2;
        public int y2;
    }

    String chip_version();

    int chip_abi_version();

    String chip_status_str(int status);

    String chip_last_error();

    int chip_model_options_default(CModelOptions opts);

    int chip_fit_options_default(CFitOptions opts);

    int chip_explain_options_default(CExplainOptions opts);

    int chip_model_load(String path, CModelOptions opts, PointerByReference out);

    int chip_model_load_bytes(byte[] data, SizeT len, CModelOptions opts, PointerByReference out);

    void chip_model_free(Pointer model);

    int chip_model_class_count(Pointer model, SizeTByReference out);

    int chip_model_input_size(Pointer model, CSize out);

    int chip_model_class_label(Pointer model, SizeT cls, byte[] buf, SizeT len, SizeTByReference outLen);

    int chip_model_preprocess(Pointer model, byte[] buf, SizeT len, SizeTByReference outLen);

    int chip_model_layer_count(Pointer model, SizeTByReference out);

    int chip_model_layer_info(Pointer model, SizeT index, byte[] name, SizeT nameLen, SizeTByReference outNameLen,
            SizeTByReference channels, SizeTByReference height, SizeTByReference width);

    int chip_model_preprocess_file(Pointer model, String path, float[] buf, SizeT len, SizeTByReference outLen,
            CSize outSize);

    int chip_model_preprocess_encoded(Pointer model, byte[] data, SizeT dataLen, float[] buf, SizeT len,
            SizeTByReference outLen, CSize outSize);

    int chip_model_predict(Pointer model, float[] data, SizeT len, SizeT n, float[] probs, SizeT probsLen,
            SizeTByReference outLen);

    int chip_fit_layer(Pointer model, String layer, CImages images, CFitOptions opts, PointerByReference out);

    int chip_collect_stats(Pointer model, String layer, CImages images, CFitOptions opts, PointerByReference out);

    int chip_stats_merge(Pointer into, Pointer other);

    int chip_solve(Pointer model, Pointer stats, CFitOptions opts, PointerByReference out);

    int chip_stats_save(Pointer stats, String path);

    int chip_stats_load(String path, PointerByReference out);

    int chip_stats_image_count(Pointer stats, SizeTByReference out);

    int chip_stats_layer_name(Pointer stats, byte[] buf, SizeT len, SizeTByReference outLen);

    void chip_stats_free(Pointer stats);

    int chip_layer_fit_save(Pointer fit, String path);

    int chip_layer_fit_load(String path, PointerByReference out);

    void chip_layer_fit_free(Pointer fit);

    int chip_layer_fit_layer_name(Pointer fit, byte[] buf, SizeT len, SizeTByReference outLen);

    int chip_layer_fit_channel_count(Pointer fit, SizeTByReference out);

    int chip_layer_fit_class_count(Pointer fit, SizeTByReference out);

    int chip_layer_fit_weights_row(Pointer fit, SizeT cls, float[] buf, SizeT len, SizeTByReference outLen);

    int chip_explainer_new(Pointer model, Pointer[] fits, SizeT count, PointerByReference out);

    void chip_explainer_free(Pointer explainer);

    int chip_explainer_layer_count(Pointer explainer, SizeTByReference out);

    int chip_explainer_layer_name(Pointer explainer, SizeT index, byte[] buf, SizeT len, SizeTByReference outLen);

    int chip_explain(Pointer explainer, CImages images, CExplainOptions opts, PointerByReference out);

    void chip_explanation_free(Pointer explanation);

    int chip_explanation_image_count(Pointer explanation, SizeTByReference out);

    int chip_explanation_image_size(Pointer explanation, SizeT image, CSize out);

    int chip_explanation_probabilities(Pointer explanation, SizeT image, float[] buf, SizeT len,
            SizeTByReference outLen);

    int chip_explanation_top_count(Pointer explanation, SizeT image, SizeTByReference out);

    int chip_explanation_top(Pointer explanation, SizeT image, SizeT rank, SizeTByReference cls,
            FloatByReference probability);

    int chip_explanation_class_count(Pointer explanation, SizeT image, SizeTByReference out);

    int chip_explanation_class(Pointer explanation, SizeT image, SizeT index, SizeTByReference cls,
            FloatByReference probability);

    int chip_explanation_layer_count(Pointer explanation, SizeTByReference out);

    int chip_explanation_map_size(Pointer explanation, SizeT image, SizeT index, SizeT layer, CSize out);

    int chip_explanation_map(Pointer explanation, SizeT image, SizeT index, SizeT layer, float[] buf, SizeT len,
            SizeTByReference outLen);

    int chip_explanation_box(Pointer explanation, SizeT image, SizeT index, SizeT layer, CBox box);

    int chip_localize(float[] map, SizeT width, SizeT height, float threshold, CBox box);

    int chip_iou(CBox a, CBox b, DoubleByReference out);
}
