import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // "P6" (RGB) unless the input picks "P5" (gray) itself.
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    fuzzDecode(bytes.starts(with: [0x50, 0x35]) ? bytes : withMagic([0x50, 0x36], data, size))
    return 0
}
