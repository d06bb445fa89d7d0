#include "vfio/domain_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlwriter.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace fpgahost::vfio {
namespace {

const xmlChar* X(const char* text) { return reinterpret_cast<const xmlChar*>(text); }
const char* C(const xmlChar* text) { return reinterpret_cast<const char*>(text); }

std::string Quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

// libxml2 sets up its globals lazily on first use, which races when two threads get there
// first together; libvirt initializes it too, but the XML code must not depend on libvirt.
void InitLibxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

struct XmlFree {
  void operator()(xmlChar* p) const { xmlFree(p); }
  void operator()(xmlDoc* p) const { xmlFreeDoc(p); }
  void operator()(xmlParserCtxt* p) const { xmlFreeParserCtxt(p); }
  void operator()(xmlBuffer* p) const { xmlBufferFree(p); }
  void operator()(xmlTextWriter* p) const { xmlFreeTextWriter(p); }
};
template <typename T>
using XmlPtr = std::unique_ptr<T, XmlFree>;

// Decodes one UTF-8 sequence at the front of `text` (shortest form only, no surrogates);
// returns the code point and its length, or nullopt.
std::optional<std::pair<uint32_t, size_t>> DecodeUtf8(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(0);
  if (lead < 0x80) return std::pair<uint32_t, size_t>{lead, 1};
  size_t length = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((lead & 0xe0) == 0xc0) {
    length = 2, cp = lead & 0x1f, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, cp = lead & 0x0f, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (text.size() < length) return std::nullopt;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  return std::pair<uint32_t, size_t>{cp, length};
}

// Escaping handles <, >, &, and quotes; what it cannot help is a string that is no XML text at
// all. Control characters (tab and newline included: no name or path of ours has one) and
// U+FFFE/U+FFFF cannot appear in XML 1.0, NUL would cut the C string libxml2 sees, and
// invalid UTF-8 would make libvirt reject the document with a less helpful message.
Status CheckText(std::string_view field, std::string_view value) {
  size_t at = 0;
  while (at < value.size()) {
    std::optional<std::pair<uint32_t, size_t>> decoded = DecodeUtf8(value.substr(at));
    if (!decoded) {
      return InvalidArgumentError(std::string(field) + ": invalid UTF-8 at byte " +
                                  std::to_string(at));
    }
    uint32_t cp = decoded->first;
    if (cp < 0x20 || cp == 0x7f || cp == 0xfffe || cp == 0xffff) {
      return InvalidArgumentError(std::string(field) + ": control character at byte " +
                                  std::to_string(at));
    }
    at += decoded->second;
  }
  return Status::Ok();
}

Status CheckNonEmptyText(std::string_view field, std::string_view value) {
  if (value.empty()) return InvalidArgumentError(std::string(field) + " is empty");
  return CheckText(field, value);
}

Status CheckAbsolutePath(std::string_view field, const std::filesystem::path& path) {
  RETURN_IF_ERROR(CheckNonEmptyText(field, path.native()));
  if (!path.is_absolute()) {
    return InvalidArgumentError(std::string(field) + ": " + Quote(path.native()) +
                                " is not an absolute path");
  }
  return Status::Ok();
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsHex(char c) { return IsLowerHex(c) || (c >= 'A' && c <= 'F'); }

Status CheckUuid(std::string_view uuid) {
  bool ok = uuid.size() == 36;
  for (size_t i = 0; ok && i < uuid.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    ok = dash ? uuid[i] == '-' : IsHex(uuid[i]);
  }
  if (ok) return Status::Ok();
  Status text = CheckText("uuid", uuid);
  return InvalidArgumentError("uuid: " + (text.ok() ? Quote(uuid) : std::string("the value")) +
                              " is not a UUID (8-4-4-4-12 hex digits)");
}

bool IsQcow2(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  for (char& c : extension) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return extension == ".qcow2";
}

Status CheckMetadata(const DomainMetadata& metadata) {
  RETURN_IF_ERROR(CheckNonEmptyText("metadata.instance_id", metadata.instance_id));
  RETURN_IF_ERROR(CheckText("metadata.tenant", metadata.tenant));
  RETURN_IF_ERROR(CheckText("metadata.instance_type", metadata.instance_type));
  for (size_t i = 0; i < metadata.slots.size(); ++i) {
    const SlotMetadata& slot = metadata.slots[i];
    std::string field = "metadata.slots[" + std::to_string(i) + "]";
    if (slot.index < 0) {
      return InvalidArgumentError(field + ".index: " + std::to_string(slot.index) + " is negative");
    }
    RETURN_IF_ERROR(CheckText(field + ".card_id", slot.card_id));
    RETURN_IF_ERROR(ParsePciAddress(slot.user_bdf, field + ".user_bdf").status());
  }
  return Status::Ok();
}

std::string Hex(unsigned value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kDigits[(value >> shift) & 0xf];
  return out;
}

// xmlTextWriter, with each call's result folded into one flag: the calls fail only when memory
// runs out, and one check at the end reads better than thirty.
class Writer {
 public:
  Writer() : buffer_(xmlBufferCreate()) {
    if (buffer_ != nullptr) writer_.reset(xmlNewTextWriterMemory(buffer_.get(), 0));
    ok_ = writer_ != nullptr && xmlTextWriterSetIndent(writer_.get(), 1) >= 0 &&
          xmlTextWriterSetIndentString(writer_.get(), X("  ")) >= 0;
  }

  void Start(const char* name) {
    Do([&] { return xmlTextWriterStartElement(writer_.get(), X(name)); });
  }
  void Attribute(const char* name, const std::string& value) {
    Do([&] { return xmlTextWriterWriteAttribute(writer_.get(), X(name), X(value.c_str())); });
  }
  void Text(const std::string& value) {
    Do([&] { return xmlTextWriterWriteString(writer_.get(), X(value.c_str())); });
  }
  void End() {
    Do([&] { return xmlTextWriterEndElement(writer_.get()); });
  }
  // <name>text</name>
  void Element(const char* name, const std::string& text) {
    Start(name);
    Text(text);
    End();
  }

  StatusOr<std::string> Finish() {
    Do([&] { return xmlTextWriterFlush(writer_.get()); });
    if (!ok_) return InternalError("writing domain XML failed (out of memory)");
    std::string xml(C(xmlBufferContent(buffer_.get())));
    if (!xml.ends_with('\n')) xml += '\n';
    return xml;
  }

 private:
  // Runs `call` (a libxml2 writer call, negative on failure) unless an earlier one failed.
  template <typename Call>
  void Do(Call call) {
    if (ok_) ok_ = call() >= 0;
  }

  XmlPtr<xmlBuffer> buffer_;
  XmlPtr<xmlTextWriter> writer_;  // declared after buffer_: freed before it
  bool ok_ = false;
};

bool HasName(const xmlNode* node, const char* name) {
  return node->name != nullptr && std::strcmp(C(node->name), name) == 0;
}

bool InOurNamespace(const xmlNode* node) {
  return node->ns != nullptr && node->ns->href != nullptr &&
         std::strcmp(C(node->ns->href), kMetadataNamespace) == 0;
}

bool SameNamespace(const xmlNode* a, const xmlNode* b) {
  if (a->ns == nullptr || b->ns == nullptr) return a->ns == b->ns;
  return a->ns->href != nullptr && b->ns->href != nullptr &&
         std::strcmp(C(a->ns->href), C(b->ns->href)) == 0;
}

std::string Describe(const xmlNode* node) {
  std::string name = node->name != nullptr ? C(node->name) : "?";
  if (node->ns != nullptr && node->ns->href != nullptr) {
    return "<" + name + "> in namespace " + Quote(C(node->ns->href));
  }
  return "<" + name + ">";
}

std::vector<const xmlNode*> ChildElements(const xmlNode* node) {
  std::vector<const xmlNode*> children;
  for (const xmlNode* child = node->children; child != nullptr; child = child->next) {
    if (child->type == XML_ELEMENT_NODE) children.push_back(child);
  }
  return children;
}

StatusOr<std::string> RequiredAttribute(const xmlNode* node, std::string_view where,
                                        const char* name) {
  XmlPtr<xmlChar> value(xmlGetNoNsProp(node, X(name)));
  if (value == nullptr) {
    return InvalidArgumentError("metadata: " + std::string(where) + " has no attribute " +
                                Quote(name));
  }
  return std::string(C(value.get()));
}

StatusOr<int> ParseIndex(std::string_view text, std::string_view where) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return InvalidArgumentError("metadata: " + std::string(where) + " attribute index: " +
                                Quote(text) + " is not a non-negative integer");
  }
  return value;
}

StatusOr<DomainMetadata> ReadInstance(const xmlNode* instance) {
  DomainMetadata metadata;
  ASSIGN_OR_RETURN(metadata.instance_id, RequiredAttribute(instance, "instance", "id"));
  if (metadata.instance_id.empty()) {
    return InvalidArgumentError("metadata: instance attribute id is empty");
  }
  ASSIGN_OR_RETURN(metadata.tenant, RequiredAttribute(instance, "instance", "tenant"));
  ASSIGN_OR_RETURN(metadata.instance_type, RequiredAttribute(instance, "instance", "type"));
  for (const xmlNode* child : ChildElements(instance)) {
    if (!HasName(child, "slot") || !SameNamespace(child, instance)) continue;
    std::string where = "slot[" + std::to_string(metadata.slots.size()) + "]";
    SlotMetadata slot;
    ASSIGN_OR_RETURN(std::string index, RequiredAttribute(child, where, "index"));
    ASSIGN_OR_RETURN(slot.index, ParseIndex(index, where));
    ASSIGN_OR_RETURN(slot.card_id, RequiredAttribute(child, where, "card"));
    ASSIGN_OR_RETURN(slot.user_bdf, RequiredAttribute(child, where, "bdf"));
    RETURN_IF_ERROR(
        ParsePciAddress(slot.user_bdf, "metadata: " + where + " attribute bdf").status());
    metadata.slots.push_back(std::move(slot));
  }
  return metadata;
}

}  // namespace

StatusOr<PciAddress> ParsePciAddress(std::string_view bdf, std::string_view field) {
  // DDDD:BB:SS.F
  bool ok = bdf.size() == 12 && bdf[4] == ':' && bdf[7] == ':' && bdf[10] == '.';
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11}) ok = ok && IsLowerHex(bdf[i]);
  auto hex = [&](size_t at, size_t length) {
    unsigned value = 0;
    std::from_chars(bdf.data() + at, bdf.data() + at + length, value, 16);
    return value;
  };
  PciAddress address;
  if (ok) address = PciAddress{hex(0, 4), hex(5, 2), hex(8, 2), hex(11, 1)};
  if (!ok || address.slot > 0x1f || address.function > 7) {
    bool printable = CheckText(field, bdf).ok() && bdf.size() <= 64;
    return InvalidArgumentError(std::string(field) + ": " +
                                (printable ? Quote(bdf) : std::string("the value")) +
                                " is not a PCI address DDDD:BB:SS.F (lower-case hex, slot <= 1f, "
                                "function <= 7)");
  }
  return address;
}

StatusOr<std::string> DomainXml(const DomainSpec& spec, const DomainXmlOptions& options) {
  RETURN_IF_ERROR(CheckNonEmptyText("name", spec.name));
  if (!spec.uuid.empty()) RETURN_IF_ERROR(CheckUuid(spec.uuid));
  if (spec.vcpus < 1) {
    return InvalidArgumentError("vcpus: " + std::to_string(spec.vcpus) + " is not positive");
  }
  if (spec.memory_mib < 1) {
    return InvalidArgumentError("memory_mib: " + std::to_string(spec.memory_mib) +
                                " is not positive");
  }
  if (spec.boot_disk) RETURN_IF_ERROR(CheckAbsolutePath("boot_disk", *spec.boot_disk));
  std::vector<PciAddress> hostdevs;
  std::set<std::string_view> seen;
  for (size_t i = 0; i < spec.hostdevs.size(); ++i) {
    std::string field = "hostdevs[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(PciAddress address, ParsePciAddress(spec.hostdevs[i], field));
    if (!seen.insert(spec.hostdevs[i]).second) {
      return InvalidArgumentError(field + ": " + Quote(spec.hostdevs[i]) + " is listed twice");
    }
    hostdevs.push_back(address);
  }
  RETURN_IF_ERROR(CheckMetadata(spec.metadata));
  RETURN_IF_ERROR(CheckNonEmptyText("domain_type", options.domain_type));
  RETURN_IF_ERROR(CheckText("machine", options.machine));
  if (options.emulator) RETURN_IF_ERROR(CheckAbsolutePath("emulator", *options.emulator));

  InitLibxml();
  Writer w;
  w.Start("domain");
  w.Attribute("type", options.domain_type);
  w.Element("name", spec.name);
  if (!spec.uuid.empty()) w.Element("uuid", spec.uuid);

  // Where libvirt puts it when it writes the domain back (virDomainGetXMLDesc).
  w.Start("metadata");
  // The declaration first, where people look for it (StartElementNS would put it last).
  w.Start("fpgahost:instance");
  w.Attribute("xmlns:fpgahost", kMetadataNamespace);
  w.Attribute("id", spec.metadata.instance_id);
  w.Attribute("tenant", spec.metadata.tenant);
  w.Attribute("type", spec.metadata.instance_type);
  for (const SlotMetadata& slot : spec.metadata.slots) {
    w.Start("fpgahost:slot");
    w.Attribute("index", std::to_string(slot.index));
    w.Attribute("card", slot.card_id);
    w.Attribute("bdf", slot.user_bdf);
    w.End();
  }
  w.End();
  w.End();

  w.Start("memory");
  w.Attribute("unit", "MiB");
  w.Text(std::to_string(spec.memory_mib));
  w.End();
  w.Start("vcpu");
  w.Attribute("placement", "static");
  w.Text(std::to_string(spec.vcpus));
  w.End();

  w.Start("os");
  w.Start("type");
  w.Attribute("arch", "x86_64");
  if (!options.machine.empty()) w.Attribute("machine", options.machine);
  w.Text("hvm");
  w.End();
  w.Start("boot");
  w.Attribute("dev", "hd");
  w.End();
  w.End();

  w.Start("features");
  w.Start("acpi");
  w.End();
  w.Start("apic");
  w.End();
  w.End();
  // The guest sees the host's CPU model, so that accelerator host code built for the host
  // (AVX-512 and friends) runs unchanged; it is a KVM notion, other drivers have no host CPU.
  if (options.domain_type == "kvm") {
    w.Start("cpu");
    w.Attribute("mode", "host-passthrough");
    w.End();
  }
  // A guest that powers off or crashes stays off: the instance manager sees the state and
  // decides; on_reboot restarts in place, as a reboot inside the guest expects.
  w.Element("on_poweroff", "destroy");
  w.Element("on_reboot", "restart");
  w.Element("on_crash", "destroy");

  w.Start("devices");
  if (options.emulator) w.Element("emulator", options.emulator->native());
  if (spec.boot_disk) {
    w.Start("disk");
    w.Attribute("type", "file");
    w.Attribute("device", "disk");
    w.Start("driver");
    w.Attribute("name", "qemu");
    // Named explicitly: letting QEMU probe the format of a guest-writable image is unsafe.
    w.Attribute("type", IsQcow2(*spec.boot_disk) ? "qcow2" : "raw");
    w.End();
    w.Start("source");
    w.Attribute("file", spec.boot_disk->native());
    w.End();
    w.Start("target");
    w.Attribute("dev", "vda");
    w.Attribute("bus", "virtio");
    w.End();
    w.End();
  }
  for (const PciAddress& address : hostdevs) {
    w.Start("hostdev");
    w.Attribute("mode", "subsystem");
    w.Attribute("type", "pci");
    w.Attribute("managed", "no");
    w.Start("driver");
    w.Attribute("name", "vfio");
    w.End();
    w.Start("source");
    w.Start("address");
    w.Attribute("domain", Hex(address.domain, 4));
    w.Attribute("bus", Hex(address.bus, 2));
    w.Attribute("slot", Hex(address.slot, 2));
    w.Attribute("function", Hex(address.function, 1));
    w.End();
    w.End();
    w.End();
  }
  w.End();

  w.End();
  return w.Finish();
}

StatusOr<std::optional<DomainMetadata>> ParseDomainMetadata(std::string_view xml) {
  if (xml.size() > kMaxDomainXmlBytes) {
    return InvalidArgumentError("metadata: " + std::to_string(xml.size()) +
                                " bytes of XML, over the limit of " +
                                std::to_string(kMaxDomainXmlBytes));
  }
  // Neither libvirt nor DomainXml writes a DTD, and a DTD is where entity expansion bombs and
  // external entities live: refuse it before libxml2 sees it. The input is read as UTF-8
  // whatever it declares, so that no other encoding (UTF-16, UTF-7, EBCDIC) can hide one.
  if (xml.find("<!DOCTYPE") != std::string_view::npos) {
    return InvalidArgumentError("metadata: XML with a document type declaration (<!DOCTYPE)");
  }
  InitLibxml();
  XmlPtr<xmlParserCtxt> context(xmlNewParserCtxt());
  if (context == nullptr) return InternalError("metadata: out of memory creating an XML parser");
  // No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no network; errors are
  // kept in the context rather than printed.
  XmlPtr<xmlDoc> doc(xmlCtxtReadMemory(
      context.get(), xml.data(), static_cast<int>(xml.size()), nullptr, "UTF-8",
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC));
  if (doc == nullptr) {
    const xmlError* error = xmlCtxtGetLastError(context.get());
    std::string why = error != nullptr && error->message != nullptr ? error->message : "";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    int line = error != nullptr ? error->line : 0;
    return InvalidArgumentError("metadata: not well-formed XML (line " + std::to_string(line) +
                                ": " + (why.empty() ? "unknown error" : why) + ")");
  }
  if (doc->intSubset != nullptr || doc->extSubset != nullptr) {
    return InvalidArgumentError("metadata: XML with a document type declaration");
  }
  if (context->nsWellFormed == 0) {
    return InvalidArgumentError("metadata: XML uses an undeclared namespace prefix");
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (root == nullptr) return InvalidArgumentError("metadata: XML without a root element");

  if (HasName(root, "domain") && root->ns == nullptr) {
    for (const xmlNode* section : ChildElements(root)) {
      if (!HasName(section, "metadata") || section->ns != nullptr) continue;
      for (const xmlNode* element : ChildElements(section)) {
        if (!InOurNamespace(element)) continue;
        if (!HasName(element, "instance")) {
          return InvalidArgumentError("metadata: " + Describe(element) +
                                      " is not fpgahost's instance element");
        }
        ASSIGN_OR_RETURN(DomainMetadata metadata, ReadInstance(element));
        return std::optional<DomainMetadata>(std::move(metadata));
      }
    }
    return std::optional<DomainMetadata>();
  }
  if (!HasName(root, "instance") || (root->ns != nullptr && !InOurNamespace(root))) {
    return InvalidArgumentError("metadata: the root element " + Describe(root) +
                                " is neither a <domain> nor fpgahost's <instance> in namespace " +
                                Quote(kMetadataNamespace));
  }
  ASSIGN_OR_RETURN(DomainMetadata metadata, ReadInstance(root));
  return std::optional<DomainMetadata>(std::move(metadata));
}

}  // namespace fpgahost::vfio
