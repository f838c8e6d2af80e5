import IdeficsTensors

/// How a checkpoint's weights are stored quantized, from config.json's `quantization_config`; which matrices are
/// quantized is read from the tensors themselves (a layer with `qweight`, a U8 matrix), and checked against it.
public enum StoredQuantization: Sendable, Equatable {
    /// AutoAWQ's GEMM layout, as HuggingFaceM4/idefics2-8b-AWQ publishes it: per linear layer `qweight`, `qzeros`
    /// and `scales`, 4 bits with a zero point and an f16 scale per group of `groupSize` inputs; the modules that
    /// `modulesToNotConvert` names keep float weights.
    case awq(groupSize: Int, modulesToNotConvert: [String])
    /// Written by `idefics quantize`: each quantized matrix a U8 tensor [rows, row bytes] of `format`'s blocks, in
    /// groups of 16 rows (`row_group_size`).
    case blocks(QuantizedFormat)

    /// Our own `quant_method`, and the names its `format` field gives our block formats (llama.cpp's).
    public static let method = "swift-idefics"
    public static let formatNames: [QuantizedFormat: String] = [.q8: "q8_0", .q4: "q4_0"]

    /// nil when the config has no `quantization_config`; an error naming the field for anything we cannot load.
    public init?(config: ConfigObject) throws {
        guard let q = try config.object("quantization_config") else { return nil }
        let methods = ["awq", Self.method]
        let method = try q.string("quant_method", default: "(missing)")
        guard methods.contains(method) else {
            throw q.error("quant_method", "is \"\(method)\": only AWQ checkpoints (awq, as idefics2-8b-AWQ) and those "
                + "`idefics quantize` writes (\(Self.method)) are read; for others use the unquantized checkpoint "
                + "with --quantize q8|q4")
        }
        if method == Self.method {
            let names = Self.formatNames.values.sorted()
            let name = try q.choice("format", default: "(missing)", supported: names, what: "this block format")
            guard try q.int("block_size", default: 32) == 32 else { throw q.error("block_size", "must be 32") }
            guard q.contains("row_group_size") else {
                throw q.error("row_group_size", "is missing: the folder was written by an earlier swift-idefics, whose "
                    + "row-by-row layout of the blocks this version does not read; run `idefics quantize` on the "
                    + "unquantized checkpoint again")
            }
            let group = try q.int("row_group_size", default: QuantizedFormat.rowGroup)
            guard group == QuantizedFormat.rowGroup else {
                throw q.error("row_group_size", "is \(group): the blocks are read in groups of \(QuantizedFormat.rowGroup) rows")
            }
            self = .blocks(Self.formatNames.first { $0.value == name }!.key)
            return
        }
        guard try q.int("bits", default: 4) == 4 else { throw q.error("bits", "must be 4 (AWQ's 4-bit weights)") }
        let version = try q.string("version", default: "gemm")
        guard version.lowercased() == "gemm" else {
            throw q.error("version", "is \"\(version)\": only AWQ's GEMM packing is read (as idefics2-8b-AWQ has)")
        }
        guard try q.bool("zero_point", default: true) else {
            throw q.error("zero_point", "is false: only AWQ with zero points is read (as idefics2-8b-AWQ has)")
        }
        let group = try q.int("group_size", default: 128)
        guard group > 0, group % 32 == 0, group <= 1 << 16 else {
            throw q.error("group_size", "is \(group): a positive multiple of 32 up to 65536 is read (idefics2-8b-AWQ: 128)")
        }
        var skipped: [String] = []
        if q.contains("modules_to_not_convert"), !q.isNull("modules_to_not_convert") {
            guard let names = q.values["modules_to_not_convert"] as? [String] else {
                throw q.error("modules_to_not_convert", "is not a list of module names")
            }
            skipped = names
        }
        self = .awq(groupSize: group, modulesToNotConvert: skipped)
    }

    /// Whether `modulesToNotConvert` names module `name`: a pattern matches whole dotted parts of it ("vision_model"
    /// matches "model.vision_model.encoder.layers.0.mlp.fc1", not "model.vision_model_2"), which agrees with the
    /// substring rule of the transformers that wrote the AWQ checkpoints and the prefix/suffix rule of today's.
    static func names(_ patterns: [String], module name: String) -> Bool {
        let dotted = "." + name + "."
        return patterns.contains { !$0.isEmpty && dotted.contains("." + $0 + ".") }
    }
}
