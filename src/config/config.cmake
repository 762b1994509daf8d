# src/config built on its own, with the allocator's flags (no exceptions, no
# RTTI), for btmctl and the tests: they link the same parser the library
# runs, not a copy.  Included from tools/ and tests/config/, whichever comes
# first.
if(NOT TARGET btm_config)
  file(GLOB BTM_CONFIG_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
  add_library(btm_config_objects OBJECT ${BTM_CONFIG_SOURCES})
  set_target_properties(btm_config_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_include_directories(btm_config_objects PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
  target_compile_features(btm_config_objects PUBLIC cxx_std_20)
  target_compile_options(btm_config_objects PRIVATE
    -fno-exceptions -fno-rtti -Wall -Wextra -Wno-unused-parameter)
  add_library(btm_config STATIC $<TARGET_OBJECTS:btm_config_objects>)
  target_include_directories(btm_config PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
  target_compile_features(btm_config PUBLIC cxx_std_20)
endif()
