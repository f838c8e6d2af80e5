/// Baseline and progressive Huffman JPEG decoded the way Pillow does it with libjpeg-turbo: islow IDCT, fancy
/// (triangle) chroma upsampling, libjpeg's fixed-point YCbCr->RGB tables, color space chosen by libjpeg's rules
/// (JFIF / Adobe transform / component ids); CMYK and YCCK come out as Pillow's inverted-Adobe "CMYK" mode.
enum JPEGDecoder {
    struct Component {
        var id: Int, h: Int, v: Int, quantTable: Int
        /// Blocks allocated per row/column (whole MCUs), and offset of this component's blocks in the store.
        var blocksWide = 0, blocksHigh = 0, offset = 0
        /// Samples actually present (libjpeg's downsampled_width/height).
        var width = 0, height = 0
    }

    struct Frame {
        var width: Int, height: Int, progressive: Bool
        var components: [Component]
        var hMax: Int, vMax: Int
        var mcusWide: Int, mcusHigh: Int
    }

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws -> DecodedImage {
        var state = JPEGState(bytes: bytes, limits: limits)
        try state.run()
        return try state.output()
    }
}

private struct JPEGState {
    let bytes: [UInt8]
    let limits: ImageLimits
    var position = 2
    var frame: JPEGDecoder.Frame?
    var quantTables = [[Int32]?](repeating: nil, count: 4)
    var dcTables = [JPEGHuffmanTable?](repeating: nil, count: 4)
    var acTables = [JPEGHuffmanTable?](repeating: nil, count: 4)
    var restartInterval = 0
    var coefficients: [Int16] = []
    var sawJFIF = false
    var adobeTransform: Int?
    var orientation = 1
    var scans = 0

    init(bytes: [UInt8], limits: ImageLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    private func u16(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }

    /// Reads markers and scans until EOI.
    mutating func run() throws {
        while true {
            // Markers may be preceded by fill bytes (0xFF); anything else between segments is skipped as libjpeg does.
            while position < bytes.count && bytes[position] != 0xFF { position += 1 }
            while position < bytes.count && bytes[position] == 0xFF { position += 1 }
            // Without EOI later progressive scans may be missing; Pillow reports such files as truncated too.
            guard position < bytes.count else { throw DecodeFailure(.truncated, "JPEG file is truncated") }
            let marker = bytes[position]
            position += 1
            switch marker {
            case 0xD9: return  // EOI
            case 0xD0...0xD7, 0x01: continue  // stray RST / TEM: no payload
            default: break
            }
            guard position + 2 <= bytes.count else { throw DecodeFailure(.truncated, "JPEG file is truncated") }
            let length = u16(position)
            guard length >= 2 else { throw DecodeFailure(.corrupt, "invalid JPEG segment length") }
            guard position + length <= bytes.count else {
                throw DecodeFailure(.truncated, "JPEG file is truncated")
            }
            let segment = (position + 2)..<(position + length)
            position += length
            switch marker {
            case 0xC0, 0xC1, 0xC2: try readFrame(segment, progressive: marker == 0xC2)
            case 0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                throw DecodeFailure(.unsupported, "lossless, hierarchical and arithmetic-coded JPEG are not supported")
            case 0xC4: try readHuffmanTables(segment)
            case 0xDB: try readQuantTables(segment)
            case 0xDD:
                guard segment.count >= 2 else { throw DecodeFailure(.corrupt, "invalid JPEG restart interval") }
                restartInterval = u16(segment.lowerBound)
            case 0xDA: try readScan(segment)
            case 0xE0:
                if segment.count >= 14 && bytes[segment.prefix(5)] == [0x4A, 0x46, 0x49, 0x46, 0] { sawJFIF = true }
            case 0xE1:
                if segment.count > 6 && bytes[segment.prefix(6)] == [0x45, 0x78, 0x69, 0x66, 0, 0] {
                    orientation = EXIF.orientation(tiff: Array(bytes[(segment.lowerBound + 6)..<segment.upperBound]))
                }
            case 0xEE:
                if segment.count >= 12 && bytes[segment.prefix(5)] == [0x41, 0x64, 0x6F, 0x62, 0x65] {
                    adobeTransform = Int(bytes[segment.lowerBound + 11])
                }
            default: continue  // other APPn, COM, DNL...
            }
        }
    }

    private mutating func readFrame(_ segment: Range<Int>, progressive: Bool) throws {
        guard frame == nil else { throw DecodeFailure(.unsupported, "JPEG with several frames is not supported") }
        guard segment.count >= 6 else { throw DecodeFailure(.corrupt, "invalid JPEG frame header") }
        let s = segment.lowerBound
        guard bytes[s] == 8 else {
            throw DecodeFailure(.unsupported, "JPEG with \(bytes[s])-bit samples is not supported")
        }
        let height = u16(s + 1), width = u16(s + 3), count = Int(bytes[s + 5])
        guard height > 0 else { throw DecodeFailure(.unsupported, "JPEG with the height in a DNL marker is not supported") }
        try limits.check(width: width, height: height)
        guard [1, 3, 4].contains(count), segment.count >= 6 + 3 * count else {
            throw DecodeFailure(.unsupported, "JPEG with \(count) components is not supported")
        }
        var components: [JPEGDecoder.Component] = []
        for i in 0..<count {
            let at = s + 6 + 3 * i
            let h = Int(bytes[at + 1] >> 4), v = Int(bytes[at + 1] & 15), tq = Int(bytes[at + 2])
            guard (1...4).contains(h), (1...4).contains(v), tq < 4 else {
                throw DecodeFailure(.corrupt, "invalid JPEG component sampling or table")
            }
            components.append(.init(id: Int(bytes[at]), h: h, v: v, quantTable: tq))
        }
        // A single-component frame is never interleaved: its MCU is one block whatever its sampling factors.
        if count == 1 { components[0].h = 1; components[0].v = 1 }
        let hMax = components.map(\.h).max()!, vMax = components.map(\.v).max()!
        let mcusWide = (width + 8 * hMax - 1) / (8 * hMax), mcusHigh = (height + 8 * vMax - 1) / (8 * vMax)
        var offset = 0
        for i in components.indices {
            components[i].blocksWide = mcusWide * components[i].h
            components[i].blocksHigh = mcusHigh * components[i].v
            components[i].width = (width * components[i].h + hMax - 1) / hMax
            components[i].height = (height * components[i].v + vMax - 1) / vMax
            components[i].offset = offset
            offset += components[i].blocksWide * components[i].blocksHigh * 64
        }
        frame = .init(width: width, height: height, progressive: progressive, components: components, hMax: hMax,
                      vMax: vMax, mcusWide: mcusWide, mcusHigh: mcusHigh)
        coefficients = [Int16](repeating: 0, count: offset)
    }

    private mutating func readQuantTables(_ segment: Range<Int>) throws {
        var at = segment.lowerBound
        while at < segment.upperBound {
            let precision = Int(bytes[at] >> 4), id = Int(bytes[at] & 15)
            let size = precision == 0 ? 64 : 128
            guard id < 4, precision <= 1, at + 1 + size <= segment.upperBound else {
                throw DecodeFailure(.corrupt, "invalid JPEG quantization table")
            }
            var table = [Int32](repeating: 0, count: 64)
            for k in 0..<64 {
                table[jpegNaturalOrder[k]] = Int32(precision == 0 ? Int(bytes[at + 1 + k]) : u16(at + 1 + 2 * k))
            }
            quantTables[id] = table
            at += 1 + size
        }
    }

    private mutating func readHuffmanTables(_ segment: Range<Int>) throws {
        var at = segment.lowerBound
        while at < segment.upperBound {
            guard at + 17 <= segment.upperBound else { throw DecodeFailure(.corrupt, "invalid JPEG Huffman table") }
            let tableClass = Int(bytes[at] >> 4), id = Int(bytes[at] & 15)
            let counts = bytes[(at + 1)..<(at + 17)]
            let total = counts.reduce(0) { $0 + Int($1) }
            guard tableClass <= 1, id < 4, total <= 256, at + 17 + total <= segment.upperBound else {
                throw DecodeFailure(.corrupt, "invalid JPEG Huffman table")
            }
            let table = try JPEGHuffmanTable(counts: counts, symbols: bytes[(at + 17)..<(at + 17 + total)])
            if tableClass == 0 { dcTables[id] = table } else { acTables[id] = table }
            at += 17 + total
        }
    }

    private mutating func readScan(_ segment: Range<Int>) throws {
        guard let frame else { throw DecodeFailure(.corrupt, "JPEG scan before the frame header") }
        let s = segment.lowerBound
        let count = Int(bytes[s])
        guard count >= 1, count <= frame.components.count, segment.count >= 1 + 2 * count + 3 else {
            throw DecodeFailure(.corrupt, "invalid JPEG scan header")
        }
        var scanComponents: [(index: Int, dc: Int, ac: Int)] = []
        for i in 0..<count {
            let id = Int(bytes[s + 1 + 2 * i]), tables = Int(bytes[s + 2 + 2 * i])
            guard let index = frame.components.firstIndex(where: { $0.id == id }), tables >> 4 < 4, tables & 15 < 4 else {
                throw DecodeFailure(.corrupt, "JPEG scan names an unknown component or table")
            }
            scanComponents.append((index, tables >> 4, tables & 15))
        }
        let p = s + 1 + 2 * count
        let start = Int(bytes[p]), end = Int(bytes[p + 1]), high = Int(bytes[p + 2] >> 4), low = Int(bytes[p + 2] & 15)
        let kind: ScanKind
        if !frame.progressive {
            kind = .baseline
        } else if start == 0 {
            guard end == 0 else { throw DecodeFailure(.corrupt, "invalid progressive JPEG scan") }
            kind = high == 0 ? .dcFirst : .dcRefine
        } else {
            guard start <= end, end < 64, count == 1 else { throw DecodeFailure(.corrupt, "invalid progressive JPEG scan") }
            kind = high == 0 ? .acFirst : .acRefine
        }
        // Every table this scan uses must be defined.
        for component in scanComponents {
            if kind == .baseline || kind == .dcFirst, dcTables[component.dc] == nil {
                throw DecodeFailure(.corrupt, "JPEG scan uses an undefined Huffman table")
            }
            if kind == .baseline || kind == .acFirst || kind == .acRefine, acTables[component.ac] == nil {
                throw DecodeFailure(.corrupt, "JPEG scan uses an undefined Huffman table")
            }
        }
        var reader = JPEGBitReader(bytes: bytes, position: segment.upperBound)
        try decodeScan(&reader, frame: frame, components: scanComponents, kind: kind, start: start, end: end,
                       shift: low)
        position = reader.position
        scans += 1
    }

    enum ScanKind { case baseline, dcFirst, dcRefine, acFirst, acRefine }

    private mutating func decodeScan(_ reader: inout JPEGBitReader, frame: JPEGDecoder.Frame,
                                     components: [(index: Int, dc: Int, ac: Int)], kind: ScanKind, start: Int,
                                     end: Int, shift: Int) throws {
        let dcTables = dcTables, acTables = acTables, restartInterval = restartInterval
        // Non-interleaved scans visit each block that holds image samples; interleaved ones whole MCUs.
        let single = components.count == 1
        let first = frame.components[components[0].index]
        let unitsWide = single ? (first.width + 7) / 8 : frame.mcusWide
        let unitsHigh = single ? (first.height + 7) / 8 : frame.mcusHigh
        var predictions = [Int](repeating: 0, count: components.count)
        var eobRun = 0
        try coefficients.withUnsafeMutableBufferPointer { store in
            var units = 0
            for unitY in 0..<unitsHigh {
                for unitX in 0..<unitsWide {
                    if restartInterval > 0 && units > 0 && units % restartInterval == 0 {
                        try reader.restart()
                        for i in predictions.indices { predictions[i] = 0 }
                        eobRun = 0
                    }
                    units += 1
                    for (n, scanComponent) in components.enumerated() {
                        let component = frame.components[scanComponent.index]
                        let (h, v) = single ? (1, 1) : (component.h, component.v)
                        for by in 0..<v {
                            for bx in 0..<h {
                                let row = unitY * v + by, column = unitX * h + bx
                                let block = store.baseAddress! + component.offset
                                    + (row * component.blocksWide + column) * 64
                                switch kind {
                                case .baseline:
                                    try reader.decodeBaseline(block, dc: &predictions[n], dcTables[scanComponent.dc]!,
                                                              acTables[scanComponent.ac]!)
                                case .dcFirst:
                                    try reader.decodeDCFirst(block, dc: &predictions[n], dcTables[scanComponent.dc]!,
                                                             shift: shift)
                                case .dcRefine:
                                    reader.decodeDCRefine(block, shift: shift)
                                case .acFirst:
                                    try reader.decodeACFirst(block, acTables[scanComponent.ac]!, start: start, end: end,
                                                             shift: shift, eobRun: &eobRun)
                                case .acRefine:
                                    try reader.decodeACRefine(block, acTables[scanComponent.ac]!, start: start,
                                                              end: end, shift: shift, eobRun: &eobRun)
                                }
                            }
                        }
                    }
                    try reader.checkOverrun()
                }
            }
        }
    }

    /// IDCT, upsampling and color conversion into Pillow's mode for this file.
    func output() throws -> DecodedImage {
        guard let frame, scans > 0 else { throw DecodeFailure(.corrupt, "JPEG has no image data") }
        var planes: [[UInt8]] = []
        for component in frame.components {
            guard let quant = quantTables[component.quantTable] else {
                throw DecodeFailure(.corrupt, "JPEG component uses an undefined quantization table")
            }
            let samples = idct(component, quant: quant)
            planes.append(JPEGColor.upsample(samples, stride: component.blocksWide * 8, width: component.width,
                                             height: component.height, factorX: frame.hMax / component.h,
                                             factorY: frame.vMax / component.v, exact: frame.hMax % component.h == 0
                                                && frame.vMax % component.v == 0, outWidth: frame.width,
                                             outHeight: frame.height))
            if planes.last!.isEmpty {
                throw DecodeFailure(.unsupported, "JPEG with fractional chroma sampling is not supported")
            }
        }
        let ids = frame.components.map(\.id)
        let layout: DecodedImage.Layout, samples: [UInt8]
        switch frame.components.count {
        case 1:
            (layout, samples) = (.gray, planes[0])
        case 3:
            // libjpeg's default_decompress_parms: JFIF, else Adobe transform, else component ids 'R','G','B'.
            let isRGB = !sawJFIF && (adobeTransform.map { $0 == 0 } ?? (ids == [82, 71, 66]))
            (layout, samples) = (.rgb, isRGB ? JPEGColor.interleave(planes) : JPEGColor.yccToRGB(planes))
        default:
            let isYCCK = adobeTransform.map { $0 != 0 } ?? false
            // Pillow reads libjpeg's CMYK with rawmode "CMYK;I" (Adobe files store inverted ink).
            let cmyk = isYCCK ? JPEGColor.ycckToCMYK(planes) : JPEGColor.interleave(planes)
            (layout, samples) = (.cmyk, cmyk.map { 255 - $0 })
        }
        return DecodedImage(width: frame.width, height: frame.height, layout: layout, samples: samples,
                            orientation: orientation)
    }

    private func idct(_ component: JPEGDecoder.Component, quant: [Int32]) -> [UInt8] {
        let stride = component.blocksWide * 8
        var samples = [UInt8](repeating: 0, count: stride * component.blocksHigh * 8)
        // Only blocks holding real samples matter; the rest of the MCU padding is never read.
        let rows = (component.height + 7) / 8, columns = (component.width + 7) / 8
        var workspace = [Int](repeating: 0, count: JPEGIDCT.workspaceSize)
        coefficients.withUnsafeBufferPointer { store in
            quant.withUnsafeBufferPointer { q in
                samples.withUnsafeMutableBufferPointer { out in
                    workspace.withUnsafeMutableBufferPointer { ws in
                        for row in 0..<rows {
                            for column in 0..<columns {
                                let block = store.baseAddress! + component.offset
                                    + (row * component.blocksWide + column) * 64
                                JPEGIDCT.transform(block, quant: q.baseAddress!,
                                                   output: out.baseAddress! + row * 8 * stride + column * 8,
                                                   stride: stride, workspace: ws.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        return samples
    }
}
