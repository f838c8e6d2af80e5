import Foundation
import IdeficsCheckpoint
import IdeficsFiles
import IdeficsTensors

/// `idefics quantize`: a checkpoint folder whose matrices are stored in a block format, so that loading it maps
/// them as they are (no quantizing, no float copy). The matrices are exactly those a load with `--quantize` would
/// quantize, with the same bytes; each is a U8 tensor [rows, row bytes] under its own name (a tied head under
/// lm_head.weight), every other tensor is copied as stored, config.json gains
/// `quantization_config: {quant_method: swift-idefics, format: q8_0|q4_0, block_size: 32, row_group_size: 16,
/// quantize_vision}`, and the folder's other files are copied.
public enum CheckpointQuantizer {
    public struct Summary: Sendable {
        public let tensors: Int
        public let quantizedTensors: Int
        public let sourceBytes: Int
        public let bytes: Int
    }

    /// Files of a checkpoint folder that hold weights (replaced by the one model.safetensors written).
    static func isWeightFile(_ name: String) -> Bool {
        name.hasSuffix(".safetensors") || name.hasSuffix(".bin") || name.hasSuffix(".safetensors.index.json")
            || name.hasSuffix(".bin.index.json")
    }

    /// Loads `pathOrID` quantizing as it goes (on `threads`), then writes the folder `output`, which must not exist:
    /// it is made beside its final path and renamed into place at the end, so that a failure leaves nothing.
    /// `progress(bytesWritten, totalBytes)` follows the writing of the weights.
    public static func write(from pathOrID: String, revision: String? = nil, to output: String, format: QuantizedFormat,
                             includeVision: Bool = false, threads: Int? = nil,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        var info = stat()
        guard lstat(output, &info) != 0 else { throw PipelineError.outputExists(path: output) }
        let target = URL(fileURLWithPath: output)
        try OutputFile.check(output) // its folder exists
        let directory = try Checkpoint.resolveDirectory(pathOrID, revision: revision)
        guard try StoredQuantization(config: ConfigObject.required(directory: directory, by: "idefics quantize")) == nil else {
            throw PipelineError.alreadyQuantized(directory: directory.path)
        }
        let log = QuantizedMatrixLog()
        let pipeline = try Pipeline(pathOrID: directory.path, threads: threads,
                                    quantization: WeightQuantization(format: format, includeVision: includeVision, log: log))
        let checkpoint = pipeline.checkpoint, quantized = log.byName

        var tensors = [SafetensorsWriter.Streamed]()
        for name in Set(checkpoint.tensorNames).union(quantized.keys).sorted() {
            let tensor = try quantized[name] ?? checkpoint.tensor(name, floatOnly: false)
            let shape = tensor.quantization == nil ? tensor.shape : [tensor.shape[0], tensor.byteCount / tensor.shape[0]]
            tensors.append(.init(name: name, dtype: tensor.dtype, shape: shape,
                                 bytes: UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount)))
        }

        let staging = target.deletingLastPathComponent()
            .appendingPathComponent(".\(target.lastPathComponent).partial-\(getpid())")
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
            try copyOtherFiles(from: directory, to: staging, format: format, includeVision: includeVision)
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                        to: staging.appendingPathComponent("model.safetensors").path, progress: progress)
            guard rename(staging.path, output) == 0 else {
                throw OutputFileError(path: output, reason: "cannot rename \(staging.path) to it: "
                                      + String(cString: strerror(errno)), isCallerFault: false)
            }
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
        return Summary(tensors: tensors.count, quantizedTensors: quantized.count, sourceBytes: checkpoint.weightBytes,
                       bytes: tensors.reduce(0) { $0 + $1.bytes.count })
    }

    /// Every file of the folder but the weights (links followed), and config.json with its quantization_config.
    private static func copyOtherFiles(from directory: URL, to staging: URL, format: QuantizedFormat,
                                       includeVision: Bool) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where !isWeightFile(name) {
            let source = directory.appendingPathComponent(name).path
            var info = stat()
            guard stat(source, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue } // folders are not model files
            var data = try InputFile.data(at: source)
            if name == "config.json" {
                var config = try InputFile.json(data) as! [String: Any]
                config["quantization_config"] = ["quant_method": StoredQuantization.method, "block_size": 32,
                                                 "row_group_size": QuantizedFormat.rowGroup,
                                                 "format": StoredQuantization.formatNames[format]!,
                                                 "quantize_vision": includeVision] as [String: Any]
                data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys,
                                                                                     .withoutEscapingSlashes])
            }
            try OutputFile.write(data, to: staging.appendingPathComponent(name).path)
        }
    }
}
