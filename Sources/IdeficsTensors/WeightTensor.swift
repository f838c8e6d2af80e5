import CKernels

/// A read-only tensor inside memory that something else owns (a memory-mapped checkpoint file, or the buffer of a
/// quantized copy). `owner` keeps that memory alive for as long as any view of it exists. A quantized matrix has
/// `quantization` set (its bytes are blocks of that format, `dtype` is U8).
public struct WeightTensor: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let quantization: QuantizedFormat?
    /// The precision of activations in products with this matrix (bf16 only ever applies to BF16 weights).
    public let products: ProductPrecision
    let owner: AnyObject

    public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer, owner: AnyObject,
                quantization: QuantizedFormat? = nil, products: ProductPrecision = .float32) {
        precondition(products == .float32 || (dtype == .bf16 && quantization == nil), "\(name): bf16 products need BF16 weights")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.owner = owner
        self.quantization = quantization
        self.products = products
    }

    /// The same matrix multiplied at `precision`. Quantized matrices keep their own products. At bf16, float32 and
    /// float16 matrices are rounded to BF16 first (`roundedToBF16`: what loading the model in bf16 does to them): half
    /// the memory of float32, and the bf16 kernels (AMX tiles) apply.
    public func multiplied(at precision: ProductPrecision, pool: WorkerPool) -> WeightTensor {
        guard quantization == nil, dtype.isFloatWeight, precision != products else { return self }
        guard dtype == .bf16 else { return roundedToBF16(pool: pool).multiplied(at: precision, pool: pool) }
        return WeightTensor(name: name, dtype: dtype, shape: shape, data: data, owner: owner, products: precision)
    }

    /// This float tensor rounded to BF16, to nearest even as torch's `.to(torch.bfloat16)`, on `pool`'s threads into
    /// memory the result owns (from a cache line); the source's pages are given back when it lives in a mapped file.
    public func roundedToBF16(pool: WorkerPool) -> WeightTensor {
        precondition(quantization == nil && dtype.isFloatWeight, "\(name): \(dtype.rawValue) is not a float type")
        let storage = WeightStorage(byteCount: count * 2)
        let (source, destination, type, width) = (data, storage.bytes.assumingMemoryBound(to: UInt16.self),
                                                   dtype.kernelType, dtype.byteSize)
        pool.forEachRange(count: (count + 4095) / 4096, work: count * 4) { chunks in
            let (first, end) = (chunks.lowerBound * 4096, min(chunks.upperBound * 4096, count))
            ck_to_bf16(source + first * width, type, end - first, destination + first)
        }
        (owner as? ReleasableWeightStorage)?.release(UnsafeRawBufferPointer(start: data, count: byteCount))
        return WeightTensor(name: name, dtype: .bf16, shape: shape, data: UnsafeRawPointer(destination), owner: storage)
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int {
        guard let quantization else { return count * dtype.byteSize }
        return shape[0] * quantization.rowBytes(columns: shape[1])
    }

    /// Whether the matrix kernels read it directly: a float type, or a quantized format.
    public var isMatrixWeight: Bool { shape.count == 2 && (quantization != nil || dtype.isFloatWeight) }

    var kernelType: ck_dtype { quantization?.kernelType ?? dtype.kernelType }

    /// The values as float32 (a copy: meant for small tensors such as norms and biases, not matrices).
    public func floats() -> [Float] {
        precondition(dtype.isFloatWeight, "\(name): \(dtype.rawValue) is not a float type")
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            convertToFloat(data, dtype, count: count, into: buffer.baseAddress!)
            initialized = count
        }
    }

    /// Row `index` of a matrix as float32 (an embedding lookup).
    public func row(_ index: Int, into destination: UnsafeMutablePointer<Float>) {
        let width = shape.last!
        ck_row_to_f32(data, kernelType, width, width, count / width, index, destination)
    }
}

extension WeightTensor {
    /// The same bytes viewed with another shape of the same element count (a conv kernel as a matrix).
    public func reshaped(_ newShape: [Int]) -> WeightTensor {
        precondition(newShape.reduce(1, *) == count && quantization == nil, "\(name): cannot view \(shape) as \(newShape)")
        return WeightTensor(name: name, dtype: dtype, shape: newShape, data: data, owner: owner, products: products)
    }
}
