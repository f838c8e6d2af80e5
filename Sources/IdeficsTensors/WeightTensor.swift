/// A read-only tensor inside memory that something else owns (a memory-mapped checkpoint file).
/// `owner` keeps that memory alive for as long as any view of it exists.
public struct WeightTensor: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    let owner: AnyObject

    public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer, owner: AnyObject) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.owner = owner
    }

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

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
        convertToFloat(data + index * width * dtype.byteSize, dtype, count: width, into: destination)
    }
}

extension WeightTensor {
    /// The same bytes viewed with another shape of the same element count (a conv kernel as a matrix).
    public func reshaped(_ newShape: [Int]) -> WeightTensor {
        precondition(newShape.reduce(1, *) == count, "\(name): cannot view \(shape) as \(newShape)")
        return WeightTensor(name: name, dtype: dtype, shape: newShape, data: data, owner: owner)
    }
}
