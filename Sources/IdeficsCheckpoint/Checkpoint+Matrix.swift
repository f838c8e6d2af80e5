import IdeficsTensors

extension Checkpoint {
    /// The matrix [rows, columns] of linear layer `name` as stored: `<name>.weight` in a float type, or in a block
    /// format mapped as it is (a checkpoint `idefics quantize` wrote), or AWQ's `<name>.qweight`, `.qzeros` and
    /// `.scales` repacked exactly (on `pool`). Shapes, types and the quantization_config are checked against each other.
    public func storedMatrix(_ name: String, rows: Int, columns: Int) throws -> WeightTensor {
        switch storedQuantization {
        case .awq(let group, let skipped) where contains(name + ".qweight"):
            return try awqMatrix(name, rows: rows, columns: columns, group: group, skipped: skipped)
        case .blocks(let format):
            let weight = try tensor(name + ".weight", floatOnly: false)
            guard weight.dtype == .u8 else { return try tensor(name + ".weight", shape: [rows, columns]) }
            let expected = [rows, format.rowBytes(columns: columns)]
            guard weight.shape == expected else {
                throw mismatch(name + ".weight", "shape \(weight.shape) is not \(expected), the bytes of \(rows) rows of "
                    + "\(columns) weights in quantization_config's format \(StoredQuantization.formatNames[format]!)")
            }
            return weight.viewed(as: format, columns: columns)
        default:
            if storedQuantization == nil, (try? tensor(name + ".weight", floatOnly: false))?.dtype == .u8 {
                throw mismatch(name + ".weight", "dtype U8 (blocks of quantized weights?), but config.json has no "
                    + "quantization_config saying their format")
            }
            return try tensor(name + ".weight", shape: [rows, columns])
        }
    }

    /// Whether layer `name` is stored quantized (so a tied head reads its own quantized copy, not the embedding).
    public func storesQuantized(_ name: String) -> Bool {
        switch storedQuantization {
        case .awq: contains(name + ".qweight")
        case .blocks: (try? tensor(name + ".weight", floatOnly: false))?.dtype == .u8
        case nil: false
        }
    }

    private func awqMatrix(_ name: String, rows: Int, columns: Int, group: Int, skipped: [String]) throws -> WeightTensor {
        guard !StoredQuantization.names(skipped, module: name) else {
            throw mismatch(name + ".qweight", "the layer is stored quantized, but quantization_config.modules_to_not_convert "
                + "names it (\(skipped.joined(separator: ", ")))")
        }
        guard columns % group == 0, rows % 8 == 0 else {
            throw mismatch(name + ".qweight", "\(columns) inputs are not a multiple of quantization_config.group_size "
                + "\(group), or \(rows) outputs not of 8")
        }
        let qweight = try tensor(name + ".qweight", shape: [columns, rows / 8], floatOnly: false)
        let qzeros = try tensor(name + ".qzeros", shape: [columns / group, rows / 8], floatOnly: false)
        let scales = try tensor(name + ".scales", shape: [columns / group, rows], floatOnly: false)
        for (tensor, dtype) in [(qweight, DType.i32), (qzeros, .i32), (scales, .f16)] where tensor.dtype != dtype {
            throw mismatch(tensor.name, "dtype \(tensor.dtype.rawValue) is not \(dtype.rawValue), as AWQ stores it")
        }
        if contains(name + ".weight") {
            throw mismatch(name + ".weight", "the layer also has AWQ's qweight: one of the two is left over")
        }
        return WeightTensor.awq(name: name + ".weight", qweight: qweight, qzeros: qzeros, scales: scales, group: group, pool: pool)
    }

    private func mismatch(_ tensor: String, _ reason: String) -> CheckpointError {
        .tensorMismatch(name: tensor, path: path(of: tensor), reason: reason)
    }
}
