import Foundation

/// Whether a URL's host is on the public internet, by the addresses it resolves to: a server that fetches images
/// for its clients must not become their way into its own loopback or private network.
enum HostAddress {
    /// Why `url`'s host may not be fetched from, or nil when every address it resolves to is public.
    static func refusal(for url: URL) -> String? {
        guard let host = url.host, !host.isEmpty else { return "the URL has no host" }
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &list) == 0, let first = list else { return "cannot resolve host \(name)" }
        defer { freeaddrinfo(list) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            if let address = info.pointee.ai_addr, let reason = nonPublic(address) {
                return "host \(name) resolves to \(reason); this server fetches only public addresses "
                    + "(--allow-private-image-urls to change that)"
            }
            entry = info.pointee.ai_next
        }
        return nil
    }

    /// A description of a non-public address, nil for a public one.
    private static func nonPublic(_ address: UnsafeMutablePointer<sockaddr>) -> String? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
            }
            return nonPublicIPv4(bytes)
        case AF_INET6:
            let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
            }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return nonPublicIPv4(Array(bytes[12..<16])) // IPv4-mapped
            }
            let text = bytes.map { String(format: "%02x", $0) }.joined()
            if bytes[0..<15].allSatisfy({ $0 == 0 }) { return "\(text) (loopback or unspecified)" }
            if bytes[0] == 0xfe, bytes[1] & 0xc0 == 0x80 { return "\(text) (link-local)" }
            if bytes[0] & 0xfe == 0xfc { return "\(text) (unique local)" }
            if bytes[0] == 0xff { return "\(text) (multicast)" }
            return nil
        default:
            return "an address of an unknown family"
        }
    }

    static func nonPublicIPv4(_ b: [UInt8]) -> String? {
        let text = b.map(String.init).joined(separator: ".")
        switch (b[0], b[1]) {
        case (0, _): return "\(text) (this network)"
        case (10, _), (172, 16...31), (192, 168): return "\(text) (private)"
        case (127, _): return "\(text) (loopback)"
        case (169, 254): return "\(text) (link-local)"
        case (100, 64...127): return "\(text) (shared address space)"
        case (224...255, _): return "\(text) (multicast or reserved)"
        default: return nil
        }
    }
}
