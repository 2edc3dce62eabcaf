# tests/fuzz/fuzz.mk: libFuzzer harnesses (clang, ASan + UBSan) for the code that takes input
# from outside: the scenario loader, the gateway site configuration, the REST API, the Modbus
# request checks, the headend inventory and the headend's AgentMessage handling
# (tests/fuzz/README.md). Included at the end of the top-level Makefile; before that, the same
# works as `make -f Makefile -f tests/fuzz/fuzz.mk TARGET` (the guard below makes a double
# include harmless).
#
#   make fuzz                      build, then run every harness FUZZ_S seconds (default 60),
#                                  one after another; corpora kept in $(BUILD)/fuzz/corpus/
#   make fuzz FUZZ_S=600 FUZZ_ONLY="rest modbus"
#   make fuzz-build                only build: $(BUILD)/fuzz/O1/bin/fuzz_NAME, seeds in
#                                  $(BUILD)/fuzz/O1/seeds/NAME
#
# Every project source is compiled again with clang into $(BUILD)/fuzz/obj (coverage
# instrumentation, sanitizers), archived, and each harness links what it needs from the
# archive. The generated sources (SunSpec tables, protobuf-c) come from the normal build's
# rules in $(GEN).
ifndef FUZZ_MK_INCLUDED
FUZZ_MK_INCLUDED := 1

FUZZ_CC    ?= $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null || echo clang)
FUZZ_S     ?= 60
FUZZ_ONLY  ?=
# -O1 for real runs; the smoke run in make test builds with FUZZ_OPT=-O0 (a third of the
# compile time; each level has its own directory, the corpus is shared).
FUZZ_OPT   ?= -O1
FUZZ_NAMES := scenario siteconf rest modbus inventory agentmsg
FUZZ_DIR    = $(BUILD)/fuzz/$(patsubst -%,%,$(FUZZ_OPT))
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=gnu11 -gline-tables-only $(FUZZ_OPT) -Wall -Wextra -Werror -Wno-unused-parameter $(FUZZ_SAN) \
              -fsanitize=fuzzer-no-link $(PKG_CFLAGS) $(HE_CFLAGS) -I. -I$(GEN) -MMD -MP
FUZZ_LIBS   = $(PKG_LIBS) $(HE_LIBS) -lglpk -lm -lpthread
FUZZ_SRC    = $(SIM_SRC) $(GW_SRC) $(HE_SRC) $(COMMON_SRC)
FUZZ_OBJ    = $(FUZZ_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/sunspec_models.o \
              $(FUZZ_DIR)/obj/gen/devmap_maps.o \
              $(FUZZ_DIR)/obj/gen/agent.pb-c.o
FUZZ_BINS   = $(FUZZ_NAMES:%=$(FUZZ_DIR)/bin/fuzz_%) $(FUZZ_DIR)/bin/fuzz_seeds
FUZZ_SEED_SCENARIOS = $(wildcard scenarios/*.json tests/data/site/*.json tests/data/gateway/*.json)

.PHONY: fuzz fuzz-build

fuzz-build: $(FUZZ_BINS) $(FUZZ_DIR)/seeds/.stamp

fuzz: fuzz-build
	@FUZZ_CORPUS=$(BUILD)/fuzz/corpus bash tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_S) $(FUZZ_ONLY)

$(FUZZ_DIR)/obj/%.o: %.c | $(GEN)/sunspec_models.h $(GEN)/devmap_maps.h $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/gen/devmap_maps.o: $(GEN)/devmap_maps.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/gen/sunspec_models.o: $(GEN)/sunspec_models.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/gen/agent.pb-c.o: $(PROTO_C)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/libproject.a: $(FUZZ_OBJ)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(FUZZ_DIR)/bin/fuzz_seeds: $(FUZZ_DIR)/obj/tests/fuzz/seeds.o $(FUZZ_DIR)/libproject.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $^ -o $@ $(FUZZ_LIBS)

$(FUZZ_DIR)/bin/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libproject.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(FUZZ_LIBS)

# Seeds: the scenarios and test data as they are (scenario), copies of the inventory examples,
# and what fuzz_seeds generates (gateway configurations from the scenarios, binary Modbus and
# AgentMessage streams, REST requests).
$(FUZZ_DIR)/seeds/.stamp: $(FUZZ_DIR)/bin/fuzz_seeds $(FUZZ_SEED_SCENARIOS) \
                          $(wildcard tests/data/*/*.json headend/examples/*.json)
	@rm -rf $(FUZZ_DIR)/seeds
	@mkdir -p $(FUZZ_DIR)/seeds/scenario $(FUZZ_DIR)/seeds/inventory
	@for f in scenarios/*.json tests/data/*/*.json; do \
	  cp "$$f" "$(FUZZ_DIR)/seeds/scenario/$$(echo "$$f" | tr / _)"; done
	@cp headend/examples/*.json $(FUZZ_DIR)/seeds/inventory/
	$(Q)ASAN_OPTIONS=detect_leaks=0 $(FUZZ_DIR)/bin/fuzz_seeds $(FUZZ_DIR)/seeds \
	  $(FUZZ_SEED_SCENARIOS) > /dev/null
	@touch $@

-include $(shell find $(BUILD)/fuzz -path '*/obj/*' -name '*.d' 2>/dev/null)

endif
