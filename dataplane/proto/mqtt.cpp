#include "proto/mqtt.h"

namespace imf::dp::proto {

const char* mqtt_error_name(MqttError e) {
  switch (e) {
    case MqttError::kNone: return "none";
    case MqttError::kBadRemainingLength: return "bad_remaining_length";
    case MqttError::kPacketTooLarge: return "packet_too_large";
    case MqttError::kReservedType: return "reserved_packet_type";
    case MqttError::kBadPublishQos: return "bad_publish_qos";
    case MqttError::kFieldOverrun: return "field_overrun";
    case MqttError::kBadProtocolLevel: return "bad_protocol_level";
    case MqttError::kBadPropertyLength: return "bad_property_length";
    case MqttError::kBadProperty: return "bad_property";
  }
  return "unknown";
}

}  // namespace imf::dp::proto
