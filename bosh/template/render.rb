# kubefoundry's BOSH job template renderer.
#
# One process renders every template of a deploy. It reads one JSON request
# per line on stdin and answers each with one JSON line on stdout:
#
#   request:  {"id": 1, "contexts": [spec, ...],
#              "items": [{"name": "job/templates/x.erb", "source": base64, "context": 0}, ...]}
#   answer:   {"id": 1, "results": [{"output": base64} or
#              {"error": {"class": "...", "message": "...", "line": 3}}, ...]}
#
# A spec is what BOSH gives a template: properties (the job's, already
# merged with its spec's defaults), links, and the instance (deployment,
# name, id, index, az, bootstrap, address, ip, networks, job, release...).
# Templates see p, if_p, link, if_link, spec, name, index and properties, as
# in BOSH. Anything a template prints goes to stderr, never into the answers.
require 'json'
require 'erb'
require 'ostruct'

ANSWERS = $stdout.dup
ANSWERS.sync = true
$stdout = $stderr

module KubefoundryTemplate
  # Raised by p when no name is set and there is no default; the message is
  # BOSH's.
  class UnknownProperty < StandardError
    attr_reader :names

    def initialize(names)
      @names = names
      super("Can't find property '#{names.inspect}'")
    end
  end

  # Raised by link for a link the job does not have (or that resolved to
  # nothing); the message is BOSH's.
  class UnknownLink < StandardError
    def initialize(name)
      super("Can't find link '#{name}'")
    end
  end

  # Dotted lookups over a properties hash, shared by the instance, its
  # links and their instances.
  module Properties
    def lookup(hash, name)
      name.to_s.split('.').reduce(hash) do |value, key|
        return nil unless value.is_a?(Hash)
        value[key]
      end
    end

    def first_set(hash, args)
      names = Array(args[0])
      names.each do |name|
        value = lookup(hash, name)
        return value unless value.nil?
      end
      return args[1] if args.length == 2
      raise UnknownProperty.new(names)
    end

    def all_set(hash, names)
      values = names.map do |name|
        value = lookup(hash, name)
        return Otherwise.new(self) if value.nil?
        value
      end
      yield(*values)
      Done.new
    end

    def p(*args)
      first_set(@properties, args)
    end

    def if_p(*names, &block)
      all_set(@properties, names, &block)
    end
  end

  # What if_p and if_link return when their block did not run: its else
  # runs instead.
  class Otherwise
    def initialize(context)
      @context = context
    end

    def else
      yield
    end

    def else_if_p(*names, &block)
      @context.if_p(*names, &block)
    end

    def else_if_link(name, &block)
      @context.if_link(name, &block)
    end
  end

  # What if_p and if_link return when their block ran.
  class Done
    def else; end

    def else_if_p(*)
      Done.new
    end

    def else_if_link(*)
      Done.new
    end
  end

  # One instance of a link's provider.
  class LinkInstance
    include Properties
    attr_reader :name, :index, :id, :az, :address, :bootstrap, :properties

    def initialize(spec, properties)
      @name = spec['name']
      @index = spec['index']
      @id = spec['id']
      @az = spec['az']
      @address = spec['address']
      @bootstrap = spec['bootstrap']
      @properties = spec['properties'] || properties
    end
  end

  # A consumed link: its provider's instances and shared properties.
  class Link
    include Properties
    attr_reader :instances, :properties, :instance_group, :default_network,
                :deployment_name, :domain

    def initialize(spec)
      @spec = spec
      @properties = spec['properties'] || {}
      @instances = (spec['instances'] || []).map { |i| LinkInstance.new(i, @properties) }
      @instance_group = spec['instance_group']
      @default_network = spec['default_network']
      @deployment_name = spec['deployment_name']
      @domain = spec['domain'] || 'bosh'
    end

    # The DNS name that resolves to the provider's instances, as BOSH DNS
    # answers it: q-<query>.<group>.<network>.<deployment>.<domain>.
    # Criteria: azs (names), status (default, unhealthy, healthy, all).
    def address(criteria = {})
      criteria = criteria.transform_keys(&:to_s)
      return @spec['address'] if criteria.empty? && @spec['address']
      query = +''
      Array(criteria['azs']).each do |az|
        id = (@spec['az_ids'] || {})[az.to_s]
        raise ArgumentError, "link #{@instance_group}: unknown AZ '#{az}'" if id.nil?
        query << "a#{id}"
      end
      status = { nil => 0, 'default' => 0, 'unhealthy' => 1, 'healthy' => 3, 'all' => 4 }[criteria['status']&.to_s]
      raise ArgumentError, "link #{@instance_group}: unknown status '#{criteria['status']}'" if status.nil?
      query << "s#{status}"
      ["q-#{query}", @instance_group, @default_network, @deployment_name, @domain].join('.')
    end
  end

  # The binding a template is evaluated in.
  class Context
    include Properties
    attr_reader :name, :index, :spec, :raw_properties

    def initialize(spec)
      @name = spec['job'].is_a?(Hash) ? spec['job']['name'] : nil
      @index = spec['index']
      @raw_properties = spec['properties'] || {}
      @properties = @raw_properties
      @links = spec['links'] || {}
      @spec = KubefoundryTemplate.structure(spec)
    end

    def properties
      KubefoundryTemplate.structure(@raw_properties)
    end

    def link(name)
      spec = @links[name.to_s]
      raise UnknownLink.new(name) unless spec.is_a?(Hash) && spec.key?('instances')
      Link.new(spec)
    end

    def if_link(name)
      spec = @links[name.to_s]
      return Otherwise.new(self) unless spec.is_a?(Hash) && spec.key?('instances')
      yield Link.new(spec)
      Done.new
    end

    def evaluate(erb)
      erb.result(binding)
    end
  end

  # Hashes as OpenStructs all the way down, as BOSH gives spec and
  # properties (spec.networks.default.ip).
  def self.structure(value)
    case value
    when Hash then OpenStruct.new(value.transform_values { |v| structure(v) })
    when Array then value.map { |v| structure(v) }
    else value
    end
  end

  def self.line_of(error, name)
    (error.backtrace || []).each do |frame|
      return Regexp.last_match(1).to_i if frame.start_with?(name + ':') && frame[name.length..] =~ /\A:(\d+)/
    end
    if error.is_a?(SyntaxError) && error.message =~ /#{Regexp.escape(name)}:(\d+)/
      return Regexp.last_match(1).to_i
    end
    0
  end

  def self.render(item, contexts)
    name = item['name']
    source = item['source'].unpack1('m0').force_encoding('UTF-8')
    erb = ERB.new(source, trim_mode: '-')
    erb.filename = name
    output = Context.new(contexts.fetch(item['context'])).evaluate(erb)
    { 'output' => [output.b].pack('m0') }
  rescue Exception => e # rubocop:disable Lint/RescueException -- a template must not stop the renderer
    message = e.message.to_s.dup.force_encoding('UTF-8').scrub
    { 'error' => { 'class' => e.class.name.sub(/\AKubefoundryTemplate::/, ''), 'message' => message,
                   'line' => line_of(e, name) } }
  end
end

$stdin.each_line do |line|
  begin
    request = JSON.parse(line)
    results = (request['items'] || []).map { |item| KubefoundryTemplate.render(item, request['contexts'] || []) }
    ANSWERS.write(JSON.generate({ 'id' => request['id'], 'results' => results }), "\n")
  rescue JSON::ParserError => e
    ANSWERS.write(JSON.generate({ 'id' => nil, 'fatal' => e.message }), "\n")
  end
end
