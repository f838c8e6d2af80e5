import CKernels

/// Block formats weights can be quantized to when a checkpoint is loaded, llama.cpp's: blocks of 32 weights
/// sharing an f16 scale d; Q8_0 stores each weight as an int8 q, w = d * q (8.5 bits per weight), Q4_0 as 4 bits,
/// w = d * (q - 8) (4.5 bits per weight).
public enum QuantizedFormat: String, Sendable, CaseIterable {
    case q8 = "q8"
    case q4 = "q4"

    var kernelType: ck_dtype { self == .q8 ? CK_Q8_0 : CK_Q4_0 }

    /// Bytes one row of `columns` weights takes.
    public func rowBytes(columns: Int) -> Int { ck_row_bytes(kernelType, columns) }
}

/// Which matrices a load quantizes, and the threads that do it. The vision tower and the connector (vision_model.,
/// connector.) stay in their stored type unless `includeVision`: they run once per image, so their weights cost
/// memory but no decoding bandwidth, and they are the most sensitive to rounding.
public struct WeightQuantization: Sendable {
    public var format: QuantizedFormat
    public var includeVision: Bool
    public let pool: WorkerPool

    public init(format: QuantizedFormat, includeVision: Bool = false, pool: WorkerPool) {
        self.format = format
        self.includeVision = includeVision
        self.pool = pool
    }

    public func applies(to name: String) -> Bool {
        includeVision || !(name.contains("vision_model.") || name.contains("connector."))
    }
}

/// Memory behind weight tensors that can give pages back once a tensor is no longer read (a mapped file).
public protocol ReleasableWeightStorage: AnyObject {
    func release(_ bytes: UnsafeRawBufferPointer)
}

/// Heap memory holding quantized weights.
final class QuantizedStorage: @unchecked Sendable {
    let bytes: UnsafeMutableRawPointer
    init(byteCount: Int) { bytes = .allocate(byteCount: max(byteCount, 1), alignment: 64) }
    deinit { bytes.deallocate() }
}

extension WeightTensor {
    /// This float matrix quantized row by row on `pool`'s threads, in memory the result owns; the pages of the
    /// source are given back to the system afterwards when it lives in a mapped file (its data is not kept).
    public func quantized(_ format: QuantizedFormat, pool: WorkerPool) -> WeightTensor {
        precondition(shape.count == 2 && dtype.isFloatWeight && quantization == nil, "\(name): not a float matrix")
        let (rows, columns) = (shape[0], shape[1])
        let rowBytes = format.rowBytes(columns: columns)
        let storage = QuantizedStorage(byteCount: rows * rowBytes)
        let source = data, sourceRowBytes = columns * dtype.byteSize, type = dtype.kernelType
        let destination = storage.bytes
        pool.forEachRange(count: rows, work: rows * columns * 8) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: columns) { row in
                for r in range {
                    ck_to_f32(source + r * sourceRowBytes, type, columns, row.baseAddress!)
                    switch format {
                    case .q8: ck_quantize_q8_0(row.baseAddress!, columns, destination + r * rowBytes)
                    case .q4: ck_quantize_q4_0(row.baseAddress!, columns, destination + r * rowBytes)
                    }
                }
            }
        }
        (owner as? ReleasableWeightStorage)?.release(UnsafeRawBufferPointer(start: data, count: byteCount))
        return WeightTensor(name: name, dtype: .u8, shape: shape, data: UnsafeRawPointer(destination), owner: storage,
                            quantization: format)
    }
}
