/* devtype: the one list of device types, as an X-macro. Every enum and every loop over device
 * types derives from it: the scenario's asset types (sim/scenario/scenario.h), the site
 * configuration's device types (gateway/control/siteconf.h), the process image's types
 * (gateway/control/procimg.h), the uplink's asset types (gateway/uplink/agentmsg.h) and the
 * simulator's register maps (sim/wire/regmap.c); their bounds come from DEVTYPE_COUNT.
 *
 * X(NAME, name, proto, driver):
 *   NAME    the enumerator suffix: ASSET_NAME, DEV_NAME, PROCIMG_NAME, AGENTMSG_ASSET_NAME
 *           (and ASSET_TYPE_NAME in proto/der/v1/agent.proto, checked by tests/unit/test_device.c)
 *   name    the spelling in scenario and site-configuration JSON ("battery"), also the C name of
 *           the simulator's register map (regmap_<name>_map)
 *   proto   the AssetType value in proto/der/v1/agent.proto (never renumbered)
 *   driver  the gateway driver a site configuration gives it ("sunspec", or a derloop map of
 *           gateway/devices/maps/)
 * The order is the order of the enums: append, never reorder. */
#ifndef DERLOOP_DEVTYPE_H
#define DERLOOP_DEVTYPE_H

#define DEVTYPE_LIST(X)                                                                            \
    X(BATTERY, battery, 1, "sunspec")                                                              \
    X(PV, pv, 2, "sunspec")                                                                        \
    X(METER, meter, 3, "sunspec")                                                                  \
    X(EVSE, evse, 4, "derloop-evse")                                                               \
    X(BOILER, boiler, 5, "derloop-boiler")

#define DEVTYPE_COUNT_ONE_(NAME, name, proto, driver) +1
#define DEVTYPE_COUNT                                 (0 DEVTYPE_LIST(DEVTYPE_COUNT_ONE_))

/* The JSON spelling, the proto value and the driver of type t (an enum value derived from the
 * list); NULL / 0 past the end. */
#define DEVTYPE_JSON_(NAME, name, proto, driver)   #name,
#define DEVTYPE_PROTO_(NAME, name, proto, driver)  proto,
#define DEVTYPE_DRIVER_(NAME, name, proto, driver) driver,
static inline const char *devtype_json(int t)
{
    static const char *const v[] = {DEVTYPE_LIST(DEVTYPE_JSON_)};
    return t >= 0 && t < DEVTYPE_COUNT ? v[t] : NULL;
}
static inline int devtype_proto(int t)
{
    static const int v[] = {DEVTYPE_LIST(DEVTYPE_PROTO_)};
    return t >= 0 && t < DEVTYPE_COUNT ? v[t] : 0;
}
static inline const char *devtype_driver(int t)
{
    static const char *const v[] = {DEVTYPE_LIST(DEVTYPE_DRIVER_)};
    return t >= 0 && t < DEVTYPE_COUNT ? v[t] : NULL;
}
#undef DEVTYPE_JSON_
#undef DEVTYPE_PROTO_
#undef DEVTYPE_DRIVER_

/* "battery, pv, meter, evse, boiler": for error messages that list the accepted types. */
#define DEVTYPE_NAMES_(NAME, name, proto, driver) ", " #name
#define DEVTYPE_NAMES                             ((DEVTYPE_LIST(DEVTYPE_NAMES_)) + 2)

#endif
